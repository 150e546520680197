"""The same run past one machine: targets segmented on the workers of a Dask cluster.

``segment(client, references, targets, out, model=ModelSpec(...))`` takes a
``distributed.Client`` of any cluster (``local_cluster(n)`` on this machine, dask-jobqueue on
SLURM/PBS, ``dask_cuda.LocalCUDACluster`` on a multi-GPU box). The engine itself never imports
Dask; this layer drives it on each worker.

A SANSA server for laptops: ``start_server(spec, credentials)`` on the GPU machine (mutual
TLS, credentials made by ``ensure_credentials``), and ``connect(address, client_folder)`` on
the laptop, which gives a :class:`RemoteSansa` with the run interface of ``Sansa``.
"""

from __future__ import annotations

from napari_sansa.distributed.credentials import ensure_credentials
from napari_sansa.distributed.local import local_cluster, parse_cluster
from napari_sansa.distributed.remote import RemotePrediction, RemoteSansa, ServerLost, check_address, connect
from napari_sansa.distributed.run import RunSummary, segment
from napari_sansa.distributed.server import Server, start_server, wait_for_stop
from napari_sansa.distributed.spec import ModelSpec
from napari_sansa.distributed.worker import TargetResult

__all__ = [
    "ModelSpec",
    "RemotePrediction",
    "RemoteSansa",
    "RunSummary",
    "Server",
    "ServerLost",
    "TargetResult",
    "check_address",
    "connect",
    "ensure_credentials",
    "local_cluster",
    "parse_cluster",
    "segment",
    "start_server",
    "wait_for_stop",
]
