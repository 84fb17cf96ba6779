"""The client's cookie jar: RFC 6265's parsing, storage and matching rules
(with RFC 6265bis's Secure and prefix rules), sans I/O; then the client
keeping and sending cookies against httpbin (from PyPI, under waitress),
across its redirects."""

from __future__ import annotations

import json

import pytest
import trio

import trionet.http
from trionet.http import CookieConflict, Cookies, Headers
from trionet.http._client import _cookies as cookies_module

BOUND = 20


def set_cookies(jar: Cookies, url: str, *values: str) -> None:
    jar.extract(url, Headers([("set-cookie", value) for value in values]))


def test_host_only_and_domain_cookies() -> None:
    jar = Cookies()
    set_cookies(jar, "http://www.example.com/", "a=1", "b=2; Domain=.Example.com")
    assert jar.header("http://www.example.com/") == "a=1; b=2"
    assert jar.header("http://shop.example.com/") == "b=2"  # a is for www alone
    assert jar.header("http://example.com/") == "b=2"
    assert jar.header("http://example.org/") is None
    [a, b] = sorted(jar.jar, key=lambda cookie: cookie.name)
    assert (a.domain, a.host_only, b.domain, b.host_only) == (
        "www.example.com",
        True,
        "example.com",
        False,
    )


@pytest.mark.parametrize(
    ("url", "set_cookie"),
    [
        ("http://www.example.com/", "c=3; Domain=com"),  # a top-level domain
        ("http://www.example.co.uk/", "c=3; Domain=co.uk"),  # a known public suffix
        ("http://www.example.com/", "c=3; Domain=example.org"),  # not the host's
        ("http://www.example.com/", "c=3; Domain=ww.example.com"),  # not a parent
        ("http://127.0.0.1/", "c=3; Domain=0.0.1"),  # an address has no parent
        ("http://www.example.com/", "c=3; Secure"),  # Secure from http
        ("https://www.example.com/", "__Secure-c=3"),  # the prefix needs Secure
        ("https://www.example.com/", "__Host-c=3; Secure; Domain=example.com"),
        ("https://www.example.com/", "__Host-c=3; Secure; Path=/a"),
        ("http://www.example.com/", "no-equals-sign"),
        ("http://www.example.com/", "=no-name"),
        ("http://www.example.com/", "big=" + "x" * 4096),  # over 4096 bytes
    ],
)
def test_cookies_refused(url: str, set_cookie: str) -> None:
    jar = Cookies()
    set_cookies(jar, url, set_cookie)
    assert jar.jar == []


@pytest.mark.parametrize("with_list", [True, False])
def test_public_suffixes_from_the_list_or_the_caution(
    monkeypatch: pytest.MonkeyPatch, with_list: bool
) -> None:
    # s3.amazonaws.com and pvt.k12.ma.us are on the Public Suffix List (the
    # psl extra, installed for the tests), not on the built-in caution list.
    if not with_list:
        monkeypatch.setattr(cookies_module, "_suffix_list", lambda: None)
    jar = Cookies()
    set_cookies(jar, "http://bucket.s3.amazonaws.com/", "a=1; Domain=s3.amazonaws.com")
    set_cookies(jar, "http://school.pvt.k12.ma.us/", "b=2; Domain=pvt.k12.ma.us")
    set_cookies(jar, "http://www.example.co.uk/", "c=3; Domain=co.uk")
    set_cookies(jar, "http://www.example.co.uk/", "d=4; Domain=example.co.uk")
    names = sorted(cookie.name for cookie in jar.jar)
    assert names == (["d"] if with_list else ["a", "b", "d"])
    # A host that is itself a suffix keeps its cookie, for itself alone.
    jar.clear()
    set_cookies(jar, "http://s3.amazonaws.com/", "e=5; Domain=s3.amazonaws.com")
    [cookie] = jar.jar
    assert cookie.host_only is with_list


def test_secure_and_host_prefixed_cookies_from_https() -> None:
    jar = Cookies()
    set_cookies(
        jar,
        "https://example.com/",
        "s=1; Secure; HttpOnly",
        "__Secure-t=2; Secure; Domain=example.com",
        "__Host-u=3; Secure; Path=/",
    )
    assert jar.header("https://example.com/") == "s=1; __Secure-t=2; __Host-u=3"
    assert jar.header("http://example.com/") is None  # Secure: never over http
    assert [cookie.http_only for cookie in jar.jar] == [True, False, False]


def test_paths_match_by_segment_and_longer_paths_go_first() -> None:
    jar = Cookies()
    set_cookies(jar, "http://h/docs/api/index", "short=1; Path=/", "long=2; Path=/docs")
    set_cookies(jar, "http://h/a/b/c", "default=3")  # the default path: /a/b
    assert jar.header("http://h/docs/x") == "long=2; short=1"
    assert jar.header("http://h/docsx") == "short=1"
    assert jar.header("http://h/doc") == "short=1"
    assert jar.header("http://h/a/b/d") == "default=3; short=1"
    assert jar.header("http://h/a/bc") == "short=1"


def test_expiry_deletes_and_max_age_wins() -> None:
    jar = Cookies()
    url = "http://h/"
    set_cookies(jar, url, "a=1", "b=2", "c=3; Max-Age=3600; Expires=Thu, 01 Jan 1970 00:00:00 GMT")
    assert jar.header(url) == "a=1; b=2; c=3"
    [c] = [cookie for cookie in jar.jar if cookie.name == "c"]
    assert c.expires is not None  # Max-Age won over the past date
    set_cookies(jar, url, "a=gone; Max-Age=0", "b=gone; Expires=Wed, 21 Oct 2015 07:28:00 GMT")
    assert jar.header(url) == "c=3"
    set_cookies(jar, url, "c=4")  # a replacement keeps the first one's place
    assert jar.header(url) == "c=4"


def test_the_jar_as_a_mapping() -> None:
    jar = Cookies({"token": "t"})  # set by hand: for every host
    assert jar.header("http://any.host/x") == "token=t"
    set_cookies(jar, "http://a.example/", "id=1")
    set_cookies(jar, "http://b.example/", "id=2")
    assert (len(jar), sorted(jar)) == (2, ["id", "token"])
    with pytest.raises(CookieConflict):
        jar["id"]
    assert jar.get("id", domain="b.example") == "2"
    jar.delete("id", domain="a.example")
    assert jar["id"] == "2"
    jar.clear(domain="b.example")
    assert "id" not in jar
    jar["more"] = "m"
    del jar["token"]
    assert dict(jar) == {"more": "m"}
    jar.clear()
    assert len(jar) == 0
    with pytest.raises(ValueError, match="max_cookies"):
        Cookies(max_cookies=0)


def test_limits_evict_the_oldest() -> None:
    jar = Cookies(max_cookies=3)
    for number in range(5):
        set_cookies(jar, f"http://h{number}.example/", f"c{number}=1")
    assert sorted(cookie.name for cookie in jar.jar) == ["c2", "c3", "c4"]
    many = Cookies()
    set_cookies(many, "http://h/", *(f"n{number}=1" for number in range(60)))
    assert len(many.jar) == 50  # per domain
    assert many.jar[0].name == "n10"


# -- against httpbin -----------------------------------------------------------------


async def test_the_client_keeps_and_sends_cookies(httpbin: int) -> None:
    base = f"http://127.0.0.1:{httpbin}"
    async with trionet.http.Client(trust_env=False) as client:
        with trio.fail_after(BOUND):
            # httpbin sets it on a redirect to /cookies, which must see it.
            response = await client.get(f"{base}/cookies/set?session=abc&theme=dark")
            assert json.loads(await response.read()) == {
                "cookies": {"session": "abc", "theme": "dark"}
            }
            assert [hop.status for hop in response.history] == [302]
            assert client.cookies["session"] == "abc"
            # A request's own cookies go with it, and are not kept.
            once = await client.get(f"{base}/cookies", cookies={"extra": "1"})
            assert json.loads(await once.read())["cookies"] == {
                "session": "abc",
                "theme": "dark",
                "extra": "1",
            }
            assert "extra" not in client.cookies
            # A Cookie field of one's own wins over the jar.
            mine = await client.get(f"{base}/cookies", headers={"cookie": "only=me"})
            assert json.loads(await mine.read())["cookies"] == {"only": "me"}
            # Deleted by the server (an expiry in the past).
            gone = await client.get(f"{base}/cookies/delete?session")
            assert json.loads(await gone.read())["cookies"] == {"theme": "dark"}
            # Other hosts get none of them: localhost is another host.
            other = await client.get(f"http://localhost:{httpbin}/cookies")
            assert json.loads(await other.read())["cookies"] == {}
            client.cookies.clear()
            empty = await client.get(f"{base}/cookies")
            assert json.loads(await empty.read())["cookies"] == {}
