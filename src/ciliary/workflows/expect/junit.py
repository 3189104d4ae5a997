"""JUnit XML of a run, in the shape CI systems read (Jenkins, GitLab, GitHub annotations):

    <testsuites name="ciliary test" tests failures errors skipped time>
      <testsuite name=FILE tests failures errors skipped time>       one per expectations file
        <testcase classname=FILE name=CASE time file line>
          <failure message=MISMATCH type="expectation">the trace</failure>   or <error ...>

A case that could not be decided is an error, not a failure; `failures` excludes them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ciliary.workflows.expect.model import CaseResult, FileResult, RunResult
from ciliary.workflows.expect.render import failure_details


def junit_xml(run: RunResult) -> str:
    root = ET.Element("testsuites", name="ciliary test")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    total_time = 0.0
    for f in run.files:
        suite = _suite(f)
        root.append(suite)
        for k in totals:
            totals[k] += int(suite.get(k, "0"))
        total_time += f.time
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("skipped", "0")
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _suite(f: FileResult) -> ET.Element:
    errors = f.errors
    suite = ET.Element(
        "testsuite", name=f.spec.file, tests=str(len(f.results)), failures=str(f.failed - errors),
        errors=str(errors), skipped="0", time=f"{f.time:.3f}",
    )
    for r in f.results:
        suite.append(_testcase(r))
    return suite


def _testcase(r: CaseResult) -> ET.Element:
    c = r.case
    tc = ET.Element("testcase", classname=c.file, name=c.name, time=f"{r.time:.6f}", file=c.file, line=str(c.line))
    if not r.passed:
        tag, kind = ("error", "error") if r.error is not None else ("failure", "expectation")
        el = ET.SubElement(tc, tag, message=r.message or "", type=kind)
        el.text = failure_details(r)
    return tc
