from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class PredictRequest(_message.Message):
    __slots__ = ("model_id", "version", "arrow_ipc")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    version: int
    arrow_ipc: bytes
    def __init__(self, model_id: _Optional[str] = ..., version: _Optional[int] = ..., arrow_ipc: _Optional[bytes] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("model_id", "version", "arrow_ipc")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    version: int
    arrow_ipc: bytes
    def __init__(self, model_id: _Optional[str] = ..., version: _Optional[int] = ..., arrow_ipc: _Optional[bytes] = ...) -> None: ...

class StreamPredictRequest(_message.Message):
    __slots__ = ("model_id", "version", "arrow_ipc")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    version: int
    arrow_ipc: bytes
    def __init__(self, model_id: _Optional[str] = ..., version: _Optional[int] = ..., arrow_ipc: _Optional[bytes] = ...) -> None: ...

class StreamPredictResponse(_message.Message):
    __slots__ = ("batch_index", "version", "arrow_ipc", "continued")
    BATCH_INDEX_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    CONTINUED_FIELD_NUMBER: _ClassVar[int]
    batch_index: int
    version: int
    arrow_ipc: bytes
    continued: bool
    def __init__(self, batch_index: _Optional[int] = ..., version: _Optional[int] = ..., arrow_ipc: _Optional[bytes] = ..., continued: _Optional[bool] = ...) -> None: ...
