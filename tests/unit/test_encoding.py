"""Content codings: bounded inflation of request bodies, and the response coding choice."""

from __future__ import annotations

import gzip
import zlib

import pytest

from service.errors import BodyTooLargeError
from service.errors import InvalidInputError
from service.errors import UnsupportedEncodingError
from service.http.encoding import compress
from service.http.encoding import decode_body
from service.http.encoding import response_coding

BODY = b'{"features": [[5.1, 3.5, 1.4, 0.2]]}' * 20


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


class TestDecodeBody:
    @pytest.mark.parametrize(
        ("coding", "encode"),
        [
            ("gzip", gzip.compress),
            ("x-gzip", gzip.compress),
            ("GZIP", gzip.compress),
            ("deflate", zlib.compress),
            ("deflate", raw_deflate),
            ("identity", lambda data: data),
        ],
    )
    def test_codings(self, coding: str, encode: object) -> None:
        """gzip, deflate (zlib or raw) and identity bodies decode to the original bytes."""
        assert BODY == decode_body(encode(BODY), coding, 10_000)  # type: ignore[operator]

    def test_gzip_members_concatenated(self) -> None:
        """A gzip body of several members decodes to their concatenation, as gzip reads it."""
        assert BODY * 2 == decode_body(gzip.compress(BODY) * 2, "gzip", 10_000)

    def test_codings_undone_last_first(self) -> None:
        """Content-Encoding lists codings in the order applied; decoding undoes the last first."""
        body = gzip.compress(zlib.compress(BODY))

        assert BODY == decode_body(body, "deflate, gzip", 10_000)

    def test_exactly_at_the_limit(self) -> None:
        """A body that inflates to exactly the limit is accepted."""
        assert BODY == decode_body(gzip.compress(BODY), "gzip", len(BODY))

    @pytest.mark.parametrize("coding", ["gzip", "deflate"])
    def test_bomb_refused(self, coding: str) -> None:
        """A body that inflates past the limit is refused: 64 MiB of zeros in 64 KiB."""
        zeros = bytes(64 * 1024 * 1024)
        body = gzip.compress(zeros, 9) if coding == "gzip" else zlib.compress(zeros, 9)

        with pytest.raises(BodyTooLargeError):
            decode_body(body, coding, 4 * 1024 * 1024)

    def test_members_share_the_limit(self) -> None:
        """Each gzip member fits but together they are over the limit: refused."""
        with pytest.raises(BodyTooLargeError):
            decode_body(gzip.compress(BODY) * 2, "gzip", len(BODY) + 1)

    @pytest.mark.parametrize(
        ("body", "coding", "message"),
        [
            (b"\x1f\x8b", "gzip", "The body is not valid gzip data: it ends too early."),
            (b"not gzip at all", "gzip", "The body is not valid gzip data."),
            (gzip.compress(BODY) + b"junk", "gzip", "The body is not valid gzip data."),
            (
                zlib.compress(BODY) + b"junk",
                "deflate",
                "The body has data after the end of its deflate stream.",
            ),
        ],
    )
    def test_corrupt(self, body: bytes, coding: str, message: str) -> None:
        """Data that is not valid for its coding is invalid input saying so."""
        with pytest.raises(InvalidInputError) as raised:
            decode_body(body, coding, 10_000)

        assert message == str(raised.value)

    def test_unknown_coding(self) -> None:
        """A coding other than gzip, deflate and identity is refused naming it."""
        with pytest.raises(UnsupportedEncodingError) as raised:
            decode_body(BODY, "br", 10_000)

        assert "Content-Encoding 'br' is not supported; send gzip, deflate or identity." == str(
            raised.value
        )


class TestResponseCoding:
    @pytest.mark.parametrize(
        ("accept", "coding"),
        [
            (None, None),
            ("", None),
            ("identity", None),
            ("gzip", "gzip"),
            ("deflate", "deflate"),
            ("gzip, deflate, br", "gzip"),
            ("deflate, gzip;q=0.5", "deflate"),
            ("gzip;q=0, deflate;q=0", None),
            ("gzip;q=0", None),
            ("*", "gzip"),
            ("*;q=0.1, gzip;q=0", "deflate"),
            ("br;q=1.0, gzip;q=0.8", "gzip"),
            ("gzip;q=oops", None),
        ],
    )
    def test_choice(self, accept: str | None, coding: str | None) -> None:
        """gzip or deflate as Accept-Encoding weighs them (gzip on a tie); none refused."""
        assert coding == response_coding(accept)

    @pytest.mark.parametrize(
        ("coding", "decode"), [("gzip", gzip.decompress), ("deflate", zlib.decompress)]
    )
    def test_compress_round_trips(self, coding: str, decode: object) -> None:
        """Compressed bodies decode with the standard library's gzip and zlib."""
        assert BODY == decode(compress(BODY, coding))  # type: ignore[operator]
