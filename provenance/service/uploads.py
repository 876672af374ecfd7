"""Request bodies into named bytes, with the limits enforced while the body streams in.

Nothing here touches the file system: uploads stay in memory (bounded by the upload limit), and
a client's file name is only ever a label on the record, never a path.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import AsyncIterator

from python_multipart.multipart import MultipartParser, parse_options_header

RAW_BODY_NAME = "upload"
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f]")
_GENERIC_TYPES = ("application/octet-stream", "binary/octet-stream", "")


class UploadError(ValueError):
    """A request the service refuses; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Upload:
    name: str  # a label for the record, never a path
    content_type: str
    data: bytes


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def accepted_file_type(content_type: str | None) -> bool:
    """Images, and anything unnamed (sniffed by the loader); c2pa's other asset types too."""
    kind = media_type(content_type)
    return kind in _GENERIC_TYPES or kind.startswith("image/") or kind in _c2pa_media_types()


@lru_cache(maxsize=1)
def _c2pa_media_types() -> frozenset[str]:
    try:
        import c2pa

        return frozenset(t.lower() for t in c2pa.Reader.get_supported_mime_types())
    except Exception:  # noqa: BLE001 - the list only widens what is accepted
        return frozenset()


def label_for(filename: str | None, index: int) -> str:
    """The last path component of a client's file name, printable and short; never opened."""
    name = _UNSAFE_NAME.sub("", (filename or "").replace("\\", "/").rsplit("/", 1)[-1]).strip()
    return (name or f"{RAW_BODY_NAME}-{index + 1}")[:200]


def check_declared_length(content_length: str | None, max_bytes: int) -> None:
    """Refuse a body whose declared length is over the limit before reading any of it."""
    if content_length is None:
        return
    try:
        declared = int(content_length)
    except ValueError:
        raise UploadError(400, "Content-Length is not a number") from None
    if declared > max_bytes:
        raise UploadError(413, f"request body is {_mib(declared)}, over the {_mib(max_bytes)} upload limit")


async def read_limited(stream: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    """The body's chunks, stopping with 413 as soon as the running total passes ``max_bytes``
    (a chunked or lying client is cut off without the rest being read)."""
    total = 0
    async for chunk in stream:
        total += len(chunk)
        if total > max_bytes:
            raise UploadError(413, f"request body is over the {_mib(max_bytes)} upload limit")
        yield chunk


async def read_raw(stream: AsyncIterator[bytes], content_type: str, name: str | None, max_bytes: int) -> list[Upload]:
    data = bytearray()
    async for chunk in read_limited(stream, max_bytes):
        data.extend(chunk)
    if not data:
        raise UploadError(422, "empty request body: send an image as the body or as multipart files")
    return [Upload(label_for(name, 0), media_type(content_type), bytes(data))]


async def read_multipart(stream: AsyncIterator[bytes], content_type: str, max_bytes: int, max_files: int) -> list[Upload]:
    """Every file part of a multipart/form-data body (any field name), in order."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise UploadError(422, "multipart body without a boundary")
    parts = _Parts(max_files)
    parser = MultipartParser(boundary, parts.callbacks())
    async for chunk in read_limited(stream, max_bytes):
        try:
            parser.write(chunk)
        except UploadError:
            raise
        except Exception as exc:  # python-multipart raises several types on malformed bodies
            raise UploadError(422, f"malformed multipart body: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    try:
        parser.finalize()
    except Exception as exc:  # noqa: BLE001 - as above
        raise UploadError(422, f"malformed multipart body: {exc}") from None
    if not parts.complete:
        raise UploadError(422, "malformed multipart body: it ends inside a part")
    if not parts.files:
        raise UploadError(422, "no file in the multipart body: send one or more files (field name 'files')")
    for upload in parts.files:
        if not accepted_file_type(upload.content_type):
            raise UploadError(415, f"{upload.name}: {upload.content_type} is not an image type")
    return parts.files


class _Parts:
    """python-multipart callbacks that keep file parts in memory and count them as they begin."""

    def __init__(self, max_files: int):
        self.max_files = max_files
        self.files: list[Upload] = []
        self.complete = False
        self._headers: dict[bytes, bytes] = {}
        self._field = bytearray()
        self._value = bytearray()
        self._data = bytearray()
        self._filename: str | None = None
        self._is_file = False

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda data, start, end: self._field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._end,
            "on_end": self._finish,
        }

    def _begin(self) -> None:
        self._headers, self._data, self._filename, self._is_file = {}, bytearray(), None, False

    def _header_end(self) -> None:
        self._headers[bytes(self._field).lower()] = bytes(self._value)
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._is_file = b"filename" in options
        if not self._is_file:
            return  # plain form fields are ignored (and cost at most the upload limit)
        if len(self.files) >= self.max_files:
            raise UploadError(413, f"more than {self.max_files} files in one request")
        self._filename = options[b"filename"].decode("utf-8", "replace")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self._data.extend(data[start:end])

    def _end(self) -> None:
        if self._is_file:
            content_type = self._headers.get(b"content-type", b"").decode("latin-1")
            self.files.append(Upload(label_for(self._filename, len(self.files)), media_type(content_type), bytes(self._data)))
        self._data = bytearray()

    def _finish(self) -> None:
        self.complete = True


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"
