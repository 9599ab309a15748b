"""Order books: the core's ``OrderBook`` (and ``MboBook``) next to a plain dict of levels
per side, on the same 1,000-level book and the same updates, in the same run.

    python benchmarks/book_compare.py             # this section alone
    python benchmarks/compare.py --only book      # the same, as a compare.py section

The updates are what a busy venue sends: mostly near the top (an exponential
distance from the best price), 15% removals, the rest new sizes; removed levels
come back, so the book stays near 2,000 levels. Both books are driven by the
same interpreted loop, so the loop's cost is in both figures.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hub_core import PRICE_SCALE, MboBook, OrderBook

LEVELS = 1_000
N_UPDATES = 100_000
N_READS = 100_000
N_DICT_READS = 500  # max() over 1,000 keys: far slower, so fewer rounds
MID = 50_000 * PRICE_SCALE
TICK = PRICE_SCALE // 100


class DictBook:
    """The baseline: ``price -> size`` per side, best found when asked."""

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}

    def replace(self, bids: tuple[tuple[int, int], ...], asks: tuple[tuple[int, int], ...]) -> None:
        self.bids = dict(bids)
        self.asks = dict(asks)

    def apply(self, side: str, price: int, size: int) -> None:
        levels = self.bids if side == "B" else self.asks
        if size == 0:
            levels.pop(price, None)
        else:
            levels[price] = size

    def best_bid(self) -> tuple[int, int] | None:
        if not self.bids:
            return None
        p = max(self.bids)
        return (p, self.bids[p])

    def best_ask(self) -> tuple[int, int] | None:
        if not self.asks:
            return None
        p = min(self.asks)
        return (p, self.asks[p])

    def top(self, n: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        return (
            sorted(self.bids.items(), reverse=True)[:n],
            sorted(self.asks.items())[:n],
        )


def book_levels(seed: int = 1) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
    rng = random.Random(seed)
    bids = tuple((MID - i * TICK, rng.randint(1, 100) * PRICE_SCALE) for i in range(1, LEVELS + 1))
    asks = tuple((MID + i * TICK, rng.randint(1, 100) * PRICE_SCALE) for i in range(1, LEVELS + 1))
    return bids, asks


def updates(n: int, seed: int = 2) -> list[tuple[str, int, int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        side = "B" if rng.random() < 0.5 else "A"
        k = int(rng.expovariate(1 / 20)) % LEVELS + 1
        price = MID - k * TICK if side == "B" else MID + k * TICK
        size = 0 if rng.random() < 0.15 else rng.randint(1, 100) * PRICE_SCALE
        out.append((side, price, size))
    return out


def apply_all(apply: Callable[[str, int, int], object], ups: list[tuple[str, int, int]]) -> None:
    for side, price, size in ups:
        apply(side, price, size)


def read_best(book: Any, n: int) -> None:
    bid = book.best_bid
    ask = book.best_ask
    for _ in range(n):
        bid()
        ask()


def bench_book(report: Callable[[Any], None], Result: Any, median_time: Any) -> None:
    bids, asks = book_levels()
    ups = updates(N_UPDATES)

    ours = OrderBook("bench", "BTCUSDT")
    ours.replace(bids, asks)
    base = DictBook()
    base.replace(bids, asks)
    t_ours = median_time(lambda: apply_all(ours.apply, ups), 5) / N_UPDATES
    t_base = median_time(lambda: apply_all(base.apply, ups), 5) / N_UPDATES
    report(
        Result(
            f"OrderBook.apply, {LEVELS:,}-level book",
            1 / t_ours / 1e6,
            "M upd/s",
            "dict of levels",
            1 / t_base / 1e6,
            t_base / t_ours,
        )
    )

    r_ours = median_time(lambda: read_best(ours, N_READS), 5) / N_READS
    r_base = median_time(lambda: read_best(base, N_DICT_READS), 3) / N_DICT_READS
    report(
        Result(
            "best_bid() + best_ask(), 1,000-level book",
            1 / r_ours / 1e6,
            "M reads/s",
            "dict of levels (max/min)",
            1 / r_base / 1e6,
            r_base / r_ours,
        )
    )

    n_top = 20_000
    k_ours = median_time(lambda: [ours.top(10) for _ in range(n_top)], 5) / n_top
    k_base = median_time(lambda: [base.top(10) for _ in range(200)], 3) / 200
    report(
        Result(
            "top(10), both sides, 1,000-level book",
            k_ours * 1e9,
            "ns",
            "dict of levels (sorted)",
            k_base * 1e9,
            k_base / k_ours,
        )
    )

    # MBO: 1,000 levels of 5 orders each, then adds and cancels near the top
    rng = random.Random(3)
    events: list[tuple[str, int, str, int, int]] = []
    resting: list[int] = []
    next_id = 1
    for side, levels in (("B", bids), ("A", asks)):
        for price, _ in levels:
            for _ in range(5):
                events.append(("A", next_id, side, price, PRICE_SCALE))
                resting.append(next_id)
                next_id += 1
    warm = len(events)
    for _ in range(N_UPDATES):
        if rng.random() < 0.5 and resting:
            oid = resting.pop(rng.randrange(len(resting)))
            events.append(("C", oid, "N", 0, 0))
        else:
            side, price, _ = ups[rng.randrange(len(ups))]
            events.append(("A", next_id, side, price, PRICE_SCALE))
            resting.append(next_id)
            next_id += 1

    def mbo_run() -> None:
        book = MboBook("bench", "ES")
        apply = book.apply
        for action, oid, side, price, size in events:
            apply(action, side, price, size, oid)

    t_mbo = median_time(mbo_run, 3) / len(events)
    report(
        Result(
            f"MboBook.apply (A/C), {warm:,} orders resting at start",
            1 / t_mbo / 1e6,
            "M events/s",
        )
    )


def main() -> int:
    sys.path.insert(0, str(Path(__file__).parent))
    from compare import Result, median_time, report

    bench_book(report, Result, median_time)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
