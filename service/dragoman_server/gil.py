"""Courtesy yields of the GIL, for worker threads that call a GIL-releasing C function in a loop.

sentencepiece (the tokenizer behind Marian, M2M100 and other "slow" tokenizers) releases the GIL
around every call and takes it back at once. A thread calling it in a loop (segmenting a long
text counts the tokens of every sentence) then keeps the GIL from every other thread of the
process for long stretches. Measured here: a thread tokenizing sentences in a loop kept a thread
that sleeps 2 ms waiting 60 ms at the median and up to 430 ms, and a server's health checks took
up to 270 ms while it segmented a 100,000-character text. Sleeping for 0 s every 2 ms hands the
GIL over to the threads waiting for it: the same sleeper then waited at most ~6 ms, and the
tokenizing loop ran no slower (it made more calls in the same time). Small torch operations,
measured the same way, need no such help.
"""

import threading
import time

__all__ = ["courtesy"]

INTERVAL_S = 0.002
_last = threading.local()


def courtesy() -> None:
    """Let the other threads run if this one has not for INTERVAL_S (call it in such loops)."""
    now = time.monotonic()
    if now - getattr(_last, "at", 0.0) >= INTERVAL_S:
        time.sleep(0)
        _last.at = time.monotonic()
