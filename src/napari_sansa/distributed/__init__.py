"""The same run past one machine: targets segmented on the workers of a Dask cluster.

``segment(client, references, targets, out, model=ModelSpec(...))`` takes a
``distributed.Client`` of any cluster (``local_cluster(n)`` on this machine, dask-jobqueue on
SLURM/PBS, ``dask_cuda.LocalCUDACluster`` on a multi-GPU box). The engine itself never imports
Dask; this layer drives it on each worker.
"""

from __future__ import annotations

from napari_sansa.distributed.local import local_cluster, parse_cluster
from napari_sansa.distributed.run import RunSummary, segment
from napari_sansa.distributed.spec import ModelSpec
from napari_sansa.distributed.worker import TargetResult

__all__ = ["ModelSpec", "RunSummary", "TargetResult", "local_cluster", "parse_cluster", "segment"]
