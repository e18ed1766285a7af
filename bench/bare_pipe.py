"""Baseline for the peer benchmark: stdin lines -> DEALER -> ROUTER -> one JSON line on stdout.

python -m bench.bare_pipe receive   # prints its port, then {"event":"message","text":...}
python -m bench.bare_pipe send PORT # sends every stdin line
"""

from __future__ import annotations

import json
import sys

import zmq


def main() -> int:
    context = zmq.Context()
    if sys.argv[1] == "receive":
        router = context.socket(zmq.ROUTER)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        print(port, flush=True)
        while True:
            _, frame = router.recv_multipart()
            line = json.dumps({"event": "message", "from": "bare", "text": frame.decode()})
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 2000)
    dealer.connect(f"tcp://127.0.0.1:{sys.argv[2]}")
    for line in sys.stdin:
        dealer.send(line.rstrip("\n").encode())
    dealer.close()
    context.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
