"""Reports: the deploy report (report.json, report.md, self-contained report.html, terminal summary)
and the energy report (energy.json, energy.md, plots) it embeds.

Sits at the pipeline level: it renders what the stages returned (ir's `Run`, energy's `Budget`s and
the energy report's dict) and never imports the simulator, the backends or the frontend; it computes
no placement and no estimate.
"""

from spikestack.report.agreement import compare_spikes, describe_agreement
from spikestack.report.content import backend_entry, build_report, quantisation_entry, write_deploy_report
from spikestack.report.energy import ENERGY_FILES, format_energy_markdown, si, write_energy_report
from spikestack.report.markdown import format_markdown, format_summary
from spikestack.report.neurobench import neurobench_metrics
from spikestack.report.sections import describe_netx

__all__ = ["ENERGY_FILES", "backend_entry", "build_report", "compare_spikes", "describe_agreement", "describe_netx",
           "format_energy_markdown", "format_markdown", "format_summary", "neurobench_metrics", "quantisation_entry", "si",
           "write_deploy_report", "write_energy_report"]
