"""Baseline for the fallback benchmark: a bare pyzmq ROUTER that forwards [to, payload] frames.

python -m bench.two_hop   # prints its port; a client says b"hi" once to get its id known
"""

from __future__ import annotations

import sys

import zmq


def main() -> int:
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    print(router.bind_to_random_port("tcp://127.0.0.1"), flush=True)
    while True:
        frames = router.recv_multipart()
        if len(frames) == 3:  # [sender, to, payload] -> [to, sender, payload]
            router.send_multipart([frames[1], frames[0], frames[2]])
        else:  # a greeting: tell the client its routing id
            router.send_multipart([frames[0], frames[0]])


if __name__ == "__main__":
    sys.exit(main())
