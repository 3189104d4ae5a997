"""Hubble flows: the flow model, reading/writing flow files, `hubble observe` filters and
output formats. See `ciliary.workflows.observe` for the end-to-end `observe` pipeline.

Layer 7: may import every layer below (replay decides flows on the engine); nothing from
workflows.
"""

from ciliary.flows.codec import (
    BadLine,
    FlowReadError,
    FlowWriter,
    ReadStats,
    flow_line,
    go_json,
    parse_flow_line,
    read_flows,
    write_flows,
)
from ciliary.flows.filter import FilterFlags, build_flow_filters, matcher_from_flags
from ciliary.flows.flowfilter import FilterError, FlowFilter
from ciliary.flows.matcher import FlowMatcher
from ciliary.flows.model import Flow
from ciliary.flows.printer import Printer, PrinterOptions, compact_line

__all__ = [
    "BadLine",
    "FilterError",
    "FilterFlags",
    "Flow",
    "FlowFilter",
    "FlowMatcher",
    "FlowReadError",
    "FlowWriter",
    "Printer",
    "PrinterOptions",
    "ReadStats",
    "build_flow_filters",
    "compact_line",
    "flow_line",
    "go_json",
    "matcher_from_flags",
    "parse_flow_line",
    "read_flows",
    "write_flows",
]
