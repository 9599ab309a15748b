"""DBN (Databento Binary Encoding, version 3) records: compiled decoder and encoder.

(Being written: the decoder body lands in the next commit.)
"""

from hub_core.ticks import BookSnapshot, BookUpdate, Quote, Trade


class RecordHandler:
    """Receives what ``DbnDecoder`` decodes. ``ConnectionSink`` subclasses it.

    Native (compiled) base class: the decoder calls these through a vtable.
    """

    def on_trade(self, tick: Trade) -> None:
        pass

    def on_quote(self, tick: Quote) -> None:
        pass

    def on_book_update(self, tick: BookUpdate) -> None:
        pass

    def on_snapshot(self, tick: BookSnapshot) -> None:
        pass

    def on_symbol_mapping(self, instrument_id: int, symbol: str, ts_event: int) -> None:
        pass

    def on_error_record(self, message: str, code: int, ts_event: int) -> None:
        pass

    def on_system_record(self, message: str, code: int, ts_event: int) -> None:
        pass

    def on_malformed(self, reason: str) -> None:
        pass

    def on_sequence_gap(self, expected: int, got: int, ts_event: int) -> None:
        pass


class DbnDecoder:
    def __init__(self, exchange: str, handler: RecordHandler, max_record_len: int = 1024) -> None:
        self.exchange = exchange
        self.handler = handler
        self.symbols: dict[int, str] = {}
        self.check_sequence = False
        self.next_sequence = 0
        self.max_record_len = max_record_len

    def feed(self, data: bytes, ts_recv: int) -> int:
        raise NotImplementedError

    def reset(self) -> None:
        self.next_sequence = 0

    @property
    def pending(self) -> int:
        return 0
