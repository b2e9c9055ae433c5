"""The OpenAI chat-completions wire format, as much of it as a local model can honour.

Requests are parsed leniently (clients send fields we do not use: `user`, `presence_penalty`, ...)
but images strictly: only inline `data:` URLs are accepted, because the server never fetches from
the network. The vLLM extensions `include_stop_str_in_output`, `return_tokens_as_token_ids` and the
`stop_reason` field are honoured, so code written against `vllm serve` works against this server.
"""

from __future__ import annotations

import time
import uuid

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from codedance_core.engines.base import Completion
from codedance_core.models.images import decode_image


class ChatCompletionRequest(BaseModel):
    """POST /v1/chat/completions body (fields we ignore are accepted and dropped)."""

    model_config = ConfigDict(extra="ignore")

    model: str = ""
    messages: list[dict] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=64)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    logprobs: bool = False
    include_stop_str_in_output: bool = False
    return_tokens_as_token_ids: bool = False

    @property
    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        stops = [self.stop] if isinstance(self.stop, str) else self.stop
        return tuple(stop for stop in stops if stop)

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


def parse_messages(messages: list[dict]) -> tuple[list[dict], list[Image.Image]]:
    """Messages for our chat template (image parts become placeholders) and the decoded images in order.

    Raises ValueError (a 400 for the client) on a malformed message or an image that is not an
    inline data URL or does not decode.
    """
    parsed: list[dict] = []
    images: list[Image.Image] = []
    for index, message in enumerate(messages):
        role = message.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            raise ValueError(f"messages[{index}]: unsupported role {role!r}")
        content = message.get("content")
        if content is None or isinstance(content, str):
            parsed.append({"role": role, "content": content or ""})
            continue
        if not isinstance(content, list):
            # ValueError, not TypeError: every malformed request is one kind of client error (a 400).
            raise ValueError(f"messages[{index}]: content must be a string or a list of parts")  # noqa: TRY004
        parts = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                parts.append({"type": "text", "text": str(part.get("text", ""))})
            elif kind == "image_url":
                url = (part.get("image_url") or {}).get("url", "")
                if not url.startswith("data:"):
                    raise ValueError(f"messages[{index}]: only inline data: image URLs are accepted")
                images.append(decode_image(url))
                parts.append({"type": "image"})
            else:
                raise ValueError(f"messages[{index}]: unsupported content part {kind!r}")
        parsed.append({"role": role, "content": parts})
    return parsed, images


def visible_text(completion: Completion, keep_stop: bool) -> str:
    """OpenAI semantics: the stop string is not part of the content unless asked (vLLM extension)."""
    if completion.stop_string and not keep_stop and completion.text.endswith(completion.stop_string):
        return completion.text[: -len(completion.stop_string)]
    return completion.text


def logprobs_block(completion: Completion, tokens: list[str], as_token_ids: bool) -> dict:
    """The OpenAI `logprobs` object of a choice: one entry per generated token."""
    entries = []
    for token_id, token_text, logprob in zip(completion.token_ids, tokens, completion.logprobs, strict=True):
        token = f"token_id:{token_id}" if as_token_ids else token_text
        entries.append(
            {"token": token, "logprob": logprob, "bytes": list(token_text.encode()), "top_logprobs": []}
        )
    return {"content": entries}


def chat_completion_body(model: str, choices: list[dict], prompt_tokens: int, completion_tokens: int) -> dict:
    """A complete `chat.completion` response object."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def error_body(message: str, kind: str = "invalid_request_error", code: str | None = None) -> dict:
    """OpenAI-style error object (the `openai` client raises it as the matching exception)."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
