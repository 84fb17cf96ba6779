"""How a TCP connection opens and closes, step by step: a server and a client
in one program, each printing what it does and what it sees.

    uv run python examples/tcp_close.py

The client sends a line and half-closes (its FIN); the server reads to the end
of the stream, answers, and returns, which closes its side (the server's
FIN); the client reads the answer to the end of the stream and closes.
"""

import trio

import trionet


async def server_side(conn: trionet.TCPConnection) -> None:
    async for event in conn:
        print(f"server: {event!r}")
    # The loop ended: the client sent its FIN and will send nothing more.
    print("server: send(b'bye\\n'), then return: the server closes (its FIN)")
    await conn.send(b"bye\n")


async def main() -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(trionet.serve_tcp, server_side, 0, "127.0.0.1")
        # connect_tcp returns once the handshake is done: SYN, SYN-ACK, ACK.
        conn = await trionet.connect_tcp("127.0.0.1", server.port)
        print("client: connected (SYN, SYN-ACK, ACK)")
        print("client: send(b'hello\\n'), then send_eof() (the client's FIN)")
        await conn.send(b"hello\n")
        await conn.send_eof()
        async for event in conn:
            print(f"client: {event!r}")
        print("client: aclose()")
        await conn.aclose()
        await server.shutdown()


if __name__ == "__main__":
    trio.run(main)
