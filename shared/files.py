"""Uploaded files (an opinion's attachments in intake, a reply's in followup): what kinds are
accepted, recognised by their first bytes, and their bytes in chunk documents read by ``_id``."""

from datetime import datetime
from typing import Annotated

from fastapi import Query
from pydantic import BaseModel
from pymongo.asynchronous.collection import AsyncCollection

from shared.store import Document

MEDIA_TYPES = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF8": "image/gif",
    b"%PDF-": "application/pdf",
    b"PK\x03\x04": "application/zip",  # docx, xlsx, pptx
    b"\xd0\xcf\x11\xe0": "application/x-ole-storage",  # doc, xls, ppt
}
OFFICE_SUFFIXES = {
    "application/zip": (".docx", ".xlsx", ".pptx"),
    "application/x-ole-storage": (".doc", ".xls", ".ppt"),
}
REFUSED_KIND = (
    "Only images (PNG/JPEG/GIF), PDF and Office files can be attached "
    "仅支持图片、PDF 和 Office 文件."
)
# FerretDB and MongoDB refuse documents over 16 MB; chunks stay far below.
CHUNK_BYTES = 1_000_000

FileName = Annotated[
    str, Query(min_length=1, max_length=200, description="The uploaded file's name")
]
# OpenAPI for an endpoint whose body is the file itself.
RAW_FILE = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


class FileRef(BaseModel):
    """What a record keeps of an uploaded file; the bytes are in the chunk store."""

    filename: str
    media_type: str
    size: int
    uploaded_at: datetime


def media_type_of(filename: str, data: bytes) -> str | None:
    """The file's type from its content, or None if it is not an accepted kind."""
    for magic, media_type in MEDIA_TYPES.items():
        if data.startswith(magic):
            suffixes = OFFICE_SUFFIXES.get(media_type)
            if suffixes is None or filename.lower().endswith(suffixes):
                return media_type
    return None


class ChunkStore:
    """File bytes in chunk documents ``<id>:<n>``, read back by ``_id``."""

    def __init__(self, chunks: AsyncCollection[Document]) -> None:
        self.chunks = chunks

    async def put(self, file_id: str, data: bytes) -> None:
        for n, start in enumerate(range(0, len(data), CHUNK_BYTES)):
            await self.chunks.replace_one(
                {"_id": f"{file_id}:{n}"},
                {"data": data[start : start + CHUNK_BYTES]},
                upsert=True,
            )

    async def get(self, file_id: str, ref: FileRef) -> bytes:
        parts = []
        for n in range(-(-ref.size // CHUNK_BYTES)):
            doc = await self.chunks.find_one({"_id": f"{file_id}:{n}"})
            assert doc is not None  # chunks are written before the reference
            parts.append(bytes(doc["data"]))
        return b"".join(parts)
