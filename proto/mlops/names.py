"""Names every process of the project agrees on: the service, the gateway, the client, probes.

Part of the contract beside the protos, so nothing else has to import the service to know
them. Kubernetes manifests and compose.yaml spell the health names too; tests check them.
"""

from __future__ import annotations

#: grpc.health.v1 service names: SERVING once the store is open / while the process lives.
READINESS_SERVICE = "mlops.v1.readiness"
LIVENESS_SERVICE = "mlops.v1.liveness"

#: Every id a client may send (models, jobs): path-safe, so it can reach SQL and storage.
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"

#: Prediction outputs: the predicted class, then PROBABILITY_PREFIX + each class's text.
LABEL_COLUMN = "label"
PROBABILITY_PREFIX = "proba_"

#: The request id: an HTTP header of the gateway, gRPC metadata (in and trailing) of the
#: service. A caller's id of this alphabet and length is kept; any other is replaced.
REQUEST_ID_KEY = "x-request-id"
REQUEST_ID_PATTERN = r"[A-Za-z0-9._-]{1,64}"
