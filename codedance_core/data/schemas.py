"""Row schemas: the RL row as released, the SFT trajectory row, and the evaluation item.

The RL row must read the released CodeDance-RL parquet *as is* (docs/method.md §5), so the
models accept the spellings found in the wild rather than one canonical form:
- the conversation is called `prompt` (verl) or `messages`; both land in `RLRow.prompt`;
- an image is a `{bytes, path}` struct, raw bytes, or a path string; all become `ImageRef`;
- nested columns written as JSON text (some exports flatten varying structs that way) are
  decoded before validation, so a JSON string that is not an object is a *wrong type*.

Validation is strict (no int-to-str coercion): a row that only "works" after coercion is a
row whose meaning we would be guessing. Null values count as missing, because parquet has no
other way to say a struct field is absent. The custom error types raised here are the
validator's reason codes (see `codedance_core.data.validate.Reason`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import pyarrow as pa
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

IMAGE_MARKER = "<image>"
SchemaName = Literal["rl", "sft", "eval"]


def _decode_json_object(value: Any) -> Any:
    """JSON text that encodes an object or a list becomes that value; anything else is left as is."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class RowModel(BaseModel):
    """Strict, tolerant of extra keys, and with nulls treated as absent."""

    model_config = ConfigDict(strict=True, extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, value: Any) -> Any:
        value = _decode_json_object(value)
        if isinstance(value, Mapping):
            return {key: item for key, item in value.items() if item is not None}
        return value


class Message(RowModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str


_Bytes = bytes  # the field below is called `bytes`, which shadows the builtin inside the class


class ImageRef(RowModel):
    """An image stored inline (`bytes`) or by reference (`path`, relative to the dataset's folder)."""

    bytes: _Bytes | None = Field(None, description="Encoded image (PNG, JPEG, ...).")
    path: str | None = None

    @model_validator(mode="after")
    def _has_content(self) -> ImageRef:
        if not self.bytes and not self.path:
            raise PydanticCustomError("missing_field", "image has neither bytes nor path")
        return self


def as_image_list(value: Any) -> Any:
    """Raw bytes, a path, a struct or a list of any of these, as a list of ImageRef inputs."""
    value = _decode_json_object(value)
    if value is None:
        return value
    if isinstance(value, (bytes, bytearray, str, Mapping)):
        value = [value]
    if not isinstance(value, Sequence) and hasattr(value, "tolist"):
        value = value.tolist()  # numpy arrays from pandas
    if not isinstance(value, Sequence):
        return value
    refs: list[Any] = []
    for item in value:
        if isinstance(item, (bytes, bytearray)):
            refs.append({"bytes": bytes(item)})
        elif isinstance(item, str) and item[:1] != "{":
            refs.append({"path": item})
        else:
            refs.append(item)
    return refs


def _require_answer(answer: str) -> str:
    if not answer.strip():
        raise PydanticCustomError("empty_answer", "the gold answer is empty")
    return answer


def _require_role(messages: list[Message], role: str) -> list[Message]:
    if not any(message.role == role for message in messages):
        raise PydanticCustomError("bad_messages", "no {role} message", {"role": role})
    return messages


def _require_images(images: list[ImageRef]) -> list[ImageRef]:
    if not images:
        raise PydanticCustomError("no_image", "the row has no image")
    return images


ImageList = Annotated[list[ImageRef], BeforeValidator(as_image_list)]
MessageList = Annotated[list[Message], BeforeValidator(_decode_json_object)]


class RewardModel(RowModel):
    style: str = "rule"
    ground_truth: str

    @field_validator("ground_truth")
    @classmethod
    def _not_empty(cls, answer: str) -> str:
        return _require_answer(answer)


class ExtraInfo(RowModel):
    """`extra_info` of an RL row; every field optional, unknown fields kept (suite generators add some)."""

    split: str | None = None
    index: int | None = None
    answer: str | None = None
    question: str | None = None
    need_tools_kwargs: bool | None = None
    tools_kwargs: Annotated[dict[str, Any] | None, BeforeValidator(_decode_json_object)] = None


class RLRow(RowModel):
    """One RL prompt, as in the released CodeDance-RL parquet."""

    data_source: str
    prompt: MessageList = Field(description="The conversation so far; `messages` in some exports.")
    images: ImageList
    ability: str
    reward_model: RewardModel
    extra_info: ExtraInfo

    @model_validator(mode="before")
    @classmethod
    def _messages_spelling(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and value.get("prompt") is None and value.get("messages") is not None:
            value = {**value, "prompt": value["messages"]}
            value.pop("messages")
        return value

    @field_validator("prompt")
    @classmethod
    def _has_user_turn(cls, messages: list[Message]) -> list[Message]:
        return _require_role(messages, "user")

    @field_validator("images")
    @classmethod
    def _has_image(cls, images: list[ImageRef]) -> list[ImageRef]:
        return _require_images(images)

    @property
    def answer(self) -> str:
        return self.reward_model.ground_truth


class SFTRow(RowModel):
    """One SFT trajectory: the whole conversation (tool observations included) and its images."""

    messages: MessageList
    images: ImageList

    @field_validator("messages")
    @classmethod
    def _has_assistant_turn(cls, messages: list[Message]) -> list[Message]:
        return _require_role(messages, "assistant")

    @field_validator("images")
    @classmethod
    def _has_image(cls, images: list[ImageRef]) -> list[ImageRef]:
        return _require_images(images)


class EvalItem(RowModel):
    """One benchmark question; `image` (singular) is accepted for `images`."""

    question: str
    answer: str
    images: ImageList
    data_source: str
    options: list[str] = Field(default_factory=list, description="Choices, when the question is multiple choice.")
    metadata: Annotated[dict[str, Any], BeforeValidator(_decode_json_object)] = Field(default_factory=dict)
    id: str | int | None = None

    @model_validator(mode="before")
    @classmethod
    def _image_spelling(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and value.get("images") is None and value.get("image") is not None:
            value = {**value, "images": value["image"]}
            value.pop("image")
        return value

    @field_validator("answer")
    @classmethod
    def _not_empty(cls, answer: str) -> str:
        return _require_answer(answer)

    @field_validator("images")
    @classmethod
    def _has_image(cls, images: list[ImageRef]) -> list[ImageRef]:
        return _require_images(images)


SCHEMA_MODELS: dict[str, type[RowModel]] = {"rl": RLRow, "sft": SFTRow, "eval": EvalItem}


def row_messages(row: RowModel) -> list[Message]:
    """The conversation of any row kind (RL rows call it `prompt`)."""
    if isinstance(row, RLRow):
        return row.prompt
    if isinstance(row, SFTRow):
        return row.messages
    if isinstance(row, EvalItem):
        return [Message(role="user", content=row.question)]
    raise TypeError(f"not a row model: {type(row).__name__}")


def image_marker_count(messages: list[Message]) -> int:
    return sum(message.content.count(IMAGE_MARKER) for message in messages)


# -- arrow types for writing rows (reading accepts more than this) -------------------------------
IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
MESSAGE_STRUCT = pa.struct([("role", pa.string()), ("content", pa.string())])

RL_ARROW_SCHEMA = pa.schema(
    [
        ("data_source", pa.string()),
        ("prompt", pa.list_(MESSAGE_STRUCT)),
        ("images", pa.list_(IMAGE_STRUCT)),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        (
            "extra_info",
            pa.struct(
                [
                    ("split", pa.string()),
                    ("index", pa.int64()),
                    ("answer", pa.string()),
                    ("question", pa.string()),
                    ("need_tools_kwargs", pa.bool_()),
                    (
                        "tools_kwargs",
                        pa.struct(
                            [
                                (
                                    "execute_python_code",
                                    pa.struct([("create_kwargs", pa.struct([("image", pa.string())]))]),
                                )
                            ]
                        ),
                    ),
                    ("family", pa.string()),
                    ("difficulty", pa.string()),
                    ("generator", pa.string()),
                ]
            ),
        ),
    ]
)

SFT_ARROW_SCHEMA = pa.schema([("messages", pa.list_(MESSAGE_STRUCT)), ("images", pa.list_(IMAGE_STRUCT))])

EVAL_ARROW_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("options", pa.list_(pa.string())),
        ("images", pa.list_(IMAGE_STRUCT)),
        ("data_source", pa.string()),
        ("metadata", pa.string()),
    ]
)
