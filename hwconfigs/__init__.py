"""Accelerator descriptions: the pydantic schema, the shipped YAML configs and their loader.

    import hwconfigs
    accel = hwconfigs.load("edge-int8")          # a shipped name, or a path to a YAML file
    hwconfigs.list_configs()                     # names of the shipped configs
    hwconfigs.DEFAULT                            # the config used when none is given
"""

from hwconfigs.loader import (
                              DEFAULT,
                              config_path,
                              from_dict,
                              json_schema,
                              list_configs,
                              load,
)
from hwconfigs.schema import (
                              Accelerator,
                              Array,
                              Datapath,
                              DynamicFixed,
                              Energy,
                              Memory,
                              Register,
                              format_bits,
)

__all__ = [
    "DEFAULT",
    "Accelerator",
    "Array",
    "Datapath",
    "DynamicFixed",
    "Energy",
    "Memory",
    "Register",
    "config_path",
    "format_bits",
    "from_dict",
    "json_schema",
    "list_configs",
    "load",
]
