from __future__ import annotations


class Error(Exception):
    def __init__(self, message: str = "", domain: str = "", code: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.domain = domain
        self.code = code


def markup_escape_text(text: str, length: int = -1) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
