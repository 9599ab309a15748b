"""pytest-benchmark: the core's order books, one batch per round.

`book_compare.py` gives the figures beside a dict-of-levels baseline; these track
regressions with pytest-benchmark's statistics.
"""

from typing import Any

from book_compare import DictBook, apply_all, book_levels, read_best, updates

from hub_core import OrderBook

UPS = updates(10_000)
BIDS, ASKS = book_levels()


def test_apply_to_a_thousand_level_book(benchmark: Any) -> None:
    book = OrderBook("bench", "BTCUSDT")
    book.replace(BIDS, ASKS)
    benchmark(apply_all, book.apply, UPS)
    assert book.check() is None


def test_apply_to_a_dict_of_levels(benchmark: Any) -> None:
    book = DictBook()
    book.replace(BIDS, ASKS)
    benchmark(apply_all, book.apply, UPS)


def test_best_bid_and_ask(benchmark: Any) -> None:
    book = OrderBook("bench", "BTCUSDT")
    book.replace(BIDS, ASKS)
    benchmark(read_best, book, 10_000)


def test_top_ten(benchmark: Any) -> None:
    book = OrderBook("bench", "BTCUSDT")
    book.replace(BIDS, ASKS)
    bids, asks = benchmark(book.top, 10)
    assert len(bids) == len(asks) == 10
