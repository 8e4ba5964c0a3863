"""Real PDF files built in code with pypdf: plain text pages, and the hostile ones an attacker (or a broken
tool) makes: one enormous word, a small file that inflates to megabytes of text, a zlib bomb page, a page
tree that points back at itself. tests/ and bench/hostile_input.py share them."""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Sequence

from pypdf import PdfWriter
from pypdf.generic import (ArrayObject, DecodedStreamObject, DictionaryObject, NameObject, NumberObject,
                           StreamObject)

LINE_HEIGHT = 12


def _font(writer: PdfWriter):
    return writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica"), NameObject("/Encoding"): NameObject("/WinAnsiEncoding")}))


def pdf_string(text: str) -> bytes:
    """A PDF literal string of `text` in WinAnsi (latin-1 here): parentheses and backslashes escaped, every
    other byte (control characters included) written as it is."""
    raw = text.encode("latin-1", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def content_stream(lines: Sequence[str]) -> bytes:
    """Draw `lines` top to bottom, one text line each (pypdf reads them back one per line)."""
    ops = [b"BT /F1 10 Tf 72 760 Td %d TL" % LINE_HEIGHT]
    for line in lines:
        ops.append(pdf_string(line) + b" Tj T*")
    ops.append(b"ET")
    return b"\n".join(ops)


def _page(writer: PdfWriter, font, stream: StreamObject):
    page = writer.add_blank_page(612, 792)
    page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
    page[NameObject("/Contents")] = writer._add_object(stream)
    return page


def _plain(data: bytes) -> StreamObject:
    stream = DecodedStreamObject()
    stream.set_data(data)
    return stream


def _deflated(data: bytes) -> StreamObject:
    """A /FlateDecode stream of `data`: what makes a small file hold a lot of text."""
    stream = StreamObject()
    stream._data = zlib.compress(data, 9)
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    stream[NameObject("/Length")] = NumberObject(len(stream._data))
    return stream


def text_pdf(path: Path, pages: Sequence[Sequence[str]], compress: bool = False) -> Path:
    """A PDF whose pages hold these lines of text."""
    writer = PdfWriter()
    font = _font(writer)
    for lines in pages:
        data = content_stream(lines)
        _page(writer, font, _deflated(data) if compress else _plain(data))
    with open(path, "wb") as fh:
        writer.write(fh)
    return path


def filler_lines(n: int, topic: str = "attention") -> list[str]:
    """Ordinary prose lines, so a hostile paper also has enough text to be a paper."""
    base = (f"We study {topic} in neural sequence models and report results on standard benchmarks. "
            "The method improves accuracy while keeping the cost of training and inference low.")
    return [base] * n


def long_word_pdf(path: Path, letters: int = 1_000_000) -> Path:
    """One word of `letters` letters (no hyphen: the worst case of a backtracking hyphen-repair regex)."""
    return text_pdf(path, [filler_lines(20), ["x" * letters], filler_lines(20)], compress=True)


def inflating_pdf(path: Path, chars: int = 6_000_000, pages: int = 6) -> Path:
    """A small file (deflate squeezes repeated lines ~150x) that inflates to `chars` characters of text."""
    line = "the model attends to every token of the sequence and the weights are shared across layers"
    per_page = chars // pages // (len(line) + 1)
    return text_pdf(path, [[line] * per_page for _ in range(pages)], compress=True)


def zlib_bomb_pdf(path: Path, inflated_bytes: int = 1 << 30, bomb_page: int = 2) -> Path:
    """Text pages with one page (1-based `bomb_page`) whose content stream inflates to `inflated_bytes`
    of spaces: ~1 MB on disk for 1 GiB inflated."""
    writer = PdfWriter()
    font = _font(writer)
    for number in range(1, 5):
        if number == bomb_page:
            compressor = zlib.compressobj(9)
            chunk = b" " * (1 << 20)
            parts = [compressor.compress(b"BT /F1 10 Tf 72 760 Td (boom) Tj ET\n")]
            for _ in range(inflated_bytes // len(chunk)):
                parts.append(compressor.compress(chunk))
            parts.append(compressor.flush())
            stream = StreamObject()
            stream._data = b"".join(parts)
            stream[NameObject("/Filter")] = NameObject("/FlateDecode")
            stream[NameObject("/Length")] = NumberObject(len(stream._data))
        else:
            stream = _plain(content_stream(filler_lines(40, topic=f"page {number}")))
        _page(writer, font, stream)
    with open(path, "wb") as fh:
        writer.write(fh)
    return path


def cyclic_pages_pdf(path: Path) -> Path:
    """Text pages whose page tree has a node listing itself among its kids (a loop a naive walk never leaves)."""
    writer = PdfWriter()
    font = _font(writer)
    for number in range(3):
        _page(writer, font, _plain(content_stream(filler_lines(40, topic=f"part {number}"))))
    root_pages = writer._pages  # the indirect reference of the /Pages node
    node = root_pages.get_object()
    loop = writer._add_object(DictionaryObject({NameObject("/Type"): NameObject("/Pages"),
                                                NameObject("/Count"): NumberObject(1)}))
    loop.get_object()[NameObject("/Kids")] = ArrayObject([loop, root_pages])
    loop.get_object()[NameObject("/Parent")] = root_pages
    kids = node[NameObject("/Kids")]
    kids.append(loop)
    node[NameObject("/Count")] = NumberObject(len(kids) + 1)
    with open(path, "wb") as fh:
        writer.write(fh)
    return path
