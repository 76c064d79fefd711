"""The report's PNG: a valid file (signature, CRCs, IHDR) whose pixels decode back to the canvas drawn."""

import struct
import zlib

import numpy as np

from quality.plot import HEIGHT, PALETTE, WIDTH, png_bytes, render


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        out.append((kind, body))
        at += 12 + length
    return out


def decode(data: bytes) -> np.ndarray:
    found = dict(chunks(data))
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", found[b"IHDR"])
    assert (depth, colour) == (8, 2)
    raw = np.frombuffer(zlib.decompress(found[b"IDAT"]), np.uint8).reshape(height, 1 + width * 3)
    assert not raw[:, 0].any()  # filter type 0 on every row
    return raw[:, 1:].reshape(height, width, 3)


def test_pixels_round_trip():
    canvas = np.random.default_rng(1).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    assert np.array_equal(decode(png_bytes(canvas)), canvas)


def test_the_report_picture_draws_each_version_in_its_colour():
    calibration = {
        "v1": [{"predicted": d / 10, "observed": d / 10} for d in range(1, 10)],
        "v2": [{"predicted": d / 10, "observed": 0.1} for d in range(1, 10)],
    }
    lifts = {
        "v1": dict(zip("ABCDE", [4.0, 1.5, 0.9, 0.5, 0.2], strict=True)),
        "v2": dict.fromkeys("ABCDE", 1.0),
    }
    image = decode(render(calibration, lifts))
    assert image.shape == (HEIGHT, WIDTH, 3)
    colours = {tuple(p) for p in image.reshape(-1, 3)}
    assert PALETTE[0] in colours and PALETTE[1] in colours
