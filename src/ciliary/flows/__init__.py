"""Hubble flows: the flow model, reading/writing flow files, `hubble observe` filters and
output formats. See `ciliary.workflows.observe` for the end-to-end `observe` pipeline."""

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
from ciliary.flows.filter import (
    FilterError,
    FilterFlags,
    FlowFilter,
    FlowMatcher,
    build_flow_filters,
    matcher_from_flags,
)
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
