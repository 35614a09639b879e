from mlops.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateTrainingJobRequest(_message.Message):
    __slots__ = ("spec", "arrow_chunk")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    ARROW_CHUNK_FIELD_NUMBER: _ClassVar[int]
    spec: _types_pb2.TrainingJobSpec
    arrow_chunk: bytes
    def __init__(self, spec: _Optional[_Union[_types_pb2.TrainingJobSpec, _Mapping]] = ..., arrow_chunk: _Optional[bytes] = ...) -> None: ...

class CreateTrainingJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _types_pb2.TrainingJob
    def __init__(self, job: _Optional[_Union[_types_pb2.TrainingJob, _Mapping]] = ...) -> None: ...

class RetrainModelRequest(_message.Message):
    __slots__ = ("spec", "arrow_chunk")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    ARROW_CHUNK_FIELD_NUMBER: _ClassVar[int]
    spec: _types_pb2.RetrainSpec
    arrow_chunk: bytes
    def __init__(self, spec: _Optional[_Union[_types_pb2.RetrainSpec, _Mapping]] = ..., arrow_chunk: _Optional[bytes] = ...) -> None: ...

class RetrainModelResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _types_pb2.TrainingJob
    def __init__(self, job: _Optional[_Union[_types_pb2.TrainingJob, _Mapping]] = ...) -> None: ...

class GetTrainingJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetTrainingJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _types_pb2.TrainingJob
    def __init__(self, job: _Optional[_Union[_types_pb2.TrainingJob, _Mapping]] = ...) -> None: ...

class ListTrainingJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "model_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    model_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., model_id: _Optional[str] = ...) -> None: ...

class ListTrainingJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[_types_pb2.TrainingJob]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[_types_pb2.TrainingJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelTrainingJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelTrainingJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _types_pb2.TrainingJob
    def __init__(self, job: _Optional[_Union[_types_pb2.TrainingJob, _Mapping]] = ...) -> None: ...

class WatchTrainingJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class WatchTrainingJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _types_pb2.TrainingJob
    def __init__(self, job: _Optional[_Union[_types_pb2.TrainingJob, _Mapping]] = ...) -> None: ...
