"""Streaming a multipart upload straight to disk: size limit, sha256 and a temporary name.

Starlette's own form parsing spools a file part to a temporary file first and checks no
size; a recording may be hundreds of megabytes, so the body is parsed here as it arrives
(python-multipart's push parser): the file part goes to ``<dir>/.upload-<uuid><suffix>``
with its sha256 computed while writing, and the upload is refused (413) the moment it
passes the limit. The caller renames the file into place once it is accepted.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from service.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed

FILE_FIELD = "file"
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 40
# Room for the form fields and multipart framing on top of the file's own limit.
FORM_OVERHEAD_BYTES = 1024 * 1024
_SAFE_SUFFIX = re.compile(r"^\.[a-z0-9]{1,5}$")


@dataclass
class ReceivedFile:
    """The file part as written to disk."""

    path: Path
    filename: str | None
    content_type: str | None
    size: int = 0
    sha256: str = ""


@dataclass
class ReceivedForm:
    """Every text field, and the file part if one was sent."""

    fields: dict[str, str] = field(default_factory=dict)
    file: ReceivedFile | None = None


def safe_suffix(filename: str | None) -> str:
    """The file name's extension when it is a plain short one (kept for format sniffing)."""
    suffix = Path(filename or "").suffix.lower()
    return suffix if _SAFE_SUFFIX.match(suffix) else ""


def _boundary(content_type: str | None) -> bytes:
    if not content_type:
        raise UnsupportedMediaType(
            "missing Content-Type: send the recording as multipart/form-data"
        )
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise UnsupportedMediaType(
            f"Content-Type {kind.decode('latin-1')} is not accepted: send multipart/form-data "
            f"with the audio in a part named '{FILE_FIELD}'"
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequest("the multipart Content-Type has no boundary", code="malformed_multipart")
    return boundary


class _Receiver:
    """python-multipart callbacks writing the file part to disk and keeping the fields."""

    def __init__(self, directory: Path, max_file_bytes: int) -> None:
        self.directory = directory
        self.max_file_bytes = max_file_bytes
        self.form = ReceivedForm()
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._value = bytearray()
        self._sink: IO[bytes] | None = None
        self._hash = hashlib.sha256()

    def on_part_begin(self) -> None:
        self._headers = {}
        self._name = None
        self._value = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.strip().lower()] = self._header_value.strip()
        self._header_field = self._header_value = b""

    def on_headers_finished(self) -> None:
        disposition, params = parse_options_header(self._headers.get(b"content-disposition"))
        name = params.get(b"name")
        if disposition != b"form-data" or name is None:
            raise BadRequest("a multipart part has no form-data name", code="malformed_multipart")
        self._name = name.decode("utf-8", "replace")
        if b"filename" not in params:
            if len(self.form.fields) >= MAX_FIELDS:
                raise ValidationFailed(
                    f"more than {MAX_FIELDS} form fields", code="too_many_fields"
                )
            return
        if self._name != FILE_FIELD:
            raise ValidationFailed(
                f"unexpected file part '{self._name}': send the recording as '{FILE_FIELD}'",
                code="unexpected_file",
            )
        if self.form.file is not None:
            raise ValidationFailed("send one recording per request", code="more_than_one_file")
        filename = params[b"filename"].decode("utf-8", "replace") or None
        content_type = self._headers.get(b"content-type")
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f".upload-{uuid.uuid4().hex}{safe_suffix(filename)}"
        self.form.file = ReceivedFile(
            path=path,
            filename=Path(filename).name[:300] if filename else None,
            content_type=content_type.decode("latin-1") if content_type else None,
        )
        self._sink = path.open("xb")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._sink is not None:
            assert self.form.file is not None
            self.form.file.size += len(chunk)
            if self.form.file.size > self.max_file_bytes:
                raise PayloadTooLarge(
                    f"the recording is over the maximum of {self.max_file_bytes} bytes",
                    code="recording_too_large",
                )
            self._hash.update(chunk)
            self._sink.write(chunk)
            return
        self._value += chunk
        if len(self._value) > MAX_FIELD_BYTES:
            raise PayloadTooLarge(
                f"form field '{self._name}' is over {MAX_FIELD_BYTES} bytes", code="field_too_large"
            )

    def on_part_end(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None
            assert self.form.file is not None
            self.form.file.sha256 = self._hash.hexdigest()
            return
        assert self._name is not None
        if self._name in self.form.fields:
            raise ValidationFailed(
                f"form field '{self._name}' is given twice", code="duplicate_field"
            )
        try:
            self.form.fields[self._name] = self._value.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadRequest(
                f"form field '{self._name}' is not valid UTF-8", code="invalid_encoding"
            ) from e

    def discard(self) -> None:
        """Remove whatever was written (on any failure)."""
        if self._sink is not None:
            self._sink.close()
            self._sink = None
        if self.form.file is not None:
            self.form.file.path.unlink(missing_ok=True)


async def receive_upload(request: Request, directory: Path, max_file_bytes: int) -> ReceivedForm:
    """Parse a multipart body as it arrives, the file part streamed into ``directory``.

    Raises 415 (not multipart), 413 (file over ``max_file_bytes``), 400 (malformed), 422
    (unexpected parts); nothing is left on disk when it raises.
    """
    boundary = _boundary(request.headers.get("content-type"))
    declared = request.headers.get("content-length")
    too_big = max_file_bytes + FORM_OVERHEAD_BYTES
    if declared is not None and declared.isdigit() and int(declared) > too_big:
        raise PayloadTooLarge(
            f"the upload is {declared} bytes, the maximum recording is {max_file_bytes} bytes",
            code="recording_too_large",
        )
    receiver = _Receiver(directory, max_file_bytes)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": receiver.on_part_begin,
            "on_part_data": receiver.on_part_data,
            "on_part_end": receiver.on_part_end,
            "on_header_field": receiver.on_header_field,
            "on_header_value": receiver.on_header_value,
            "on_header_end": receiver.on_header_end,
            "on_headers_finished": receiver.on_headers_finished,
        },
    )
    try:
        async for chunk in request.stream():
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except MultipartParseError as e:
        receiver.discard()
        raise BadRequest(f"the multipart body is malformed: {e}", code="malformed_multipart") from e
    except BaseException:
        receiver.discard()
        raise
    if receiver._sink is not None:  # the body ended inside the file part
        receiver.discard()
        raise BadRequest("the multipart body ended before the file did", code="malformed_multipart")
    return receiver.form


def discard(form: ReceivedForm) -> None:
    """Delete the received file, if any."""
    if form.file is not None:
        with contextlib.suppress(OSError):
            form.file.path.unlink(missing_ok=True)
