"""The bare baseline: a pyzmq ROUTER that sends every message straight back."""

from __future__ import annotations

import sys

import zmq


def main() -> None:
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    print(port, flush=True)
    try:
        while True:
            router.send_multipart(router.recv_multipart())
    except KeyboardInterrupt:
        pass
    finally:
        router.close()
        context.term()


if __name__ == "__main__":
    sys.exit(main())
