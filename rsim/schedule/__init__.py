"""The scheduler: lower layers to GEMMs and map them onto an accelerator's MAC array.

    from rsim.schedule import schedule, conv_work, gemm_work
    result = schedule([conv_work("c1", ...), gemm_work("fc", 1, 512, 10)], hwconfigs.load())
    result.layers[0].plan                 # the reduction plan kernels.gemm takes

See DESIGN.md "Scheduler"; timing is SCALE-Sim 3.0.0's closed form (rsim.schedule.systolic).
"""

from rsim.schedule.dataflows import DATAFLOWS, OS_FILLS, DataflowRule, dataflow_rule
from rsim.schedule.geometry import GemmWork, conv_work, gemm_work
from rsim.schedule.plan import reduction_plan
from rsim.schedule.scheduler import (
                                     ROW_COLUMNS,
                                     LayerSchedule,
                                     Schedule,
                                     schedule,
                                     schedule_layer,
                                     schedule_rows,
)
from rsim.schedule.systolic import FoldTiming, fold_timing
from rsim.schedule.traffic import Traffic

__all__ = [
    "DATAFLOWS",
    "OS_FILLS",
    "ROW_COLUMNS",
    "DataflowRule",
    "FoldTiming",
    "GemmWork",
    "LayerSchedule",
    "Schedule",
    "Traffic",
    "conv_work",
    "dataflow_rule",
    "fold_timing",
    "gemm_work",
    "reduction_plan",
    "schedule",
    "schedule_layer",
    "schedule_rows",
]
