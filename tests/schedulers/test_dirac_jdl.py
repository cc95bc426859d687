"""The pure JDL builder and the readers of DIRAC's command output, checked with DIRAC's own parser."""
from __future__ import annotations

import pytest

from picas.errors import InvalidInput, SchedulerError
from picas.schedulers import jdl
from picas.schedulers.jdl import JdlOptions, build_jdl
from tests.schedulers.dirac_support import expand_jdl, parse_jdl

SANDBOX = ["picas.pyz", "picas-pilot.yml"]

OPTION_SETS = {
    "minimal": JdlOptions(pilots=1, input_sandbox=SANDBOX),
    "parametric": JdlOptions(pilots=5, input_sandbox=SANDBOX, job_group="run42",
                             pilot_args=["--design-doc", "Monitor", "--view", "todo", "--max-time=2h"]),
    "everything": JdlOptions(
        pilots=12, job_name="fractals", job_group="fractals-2024", site=["LCG.SARA.nl", "LCG.NIKHEF.nl"],
        banned_sites=["LCG.Broken.org"], cpu_time=86400, tags=["8Processors", "WholeNode"],
        number_of_processors=8, platform="EL9", start_args=["--python", "/cvmfs/sw/python3.11/bin/python3"],
        pilot_args=["--design-doc", "MultiCore", "--token-timeout=30m", "--retries=2", "--wait"],
        input_sandbox=SANDBOX + ["fractal.c", "picas-setup.sh"], output_files=["results.tar"],
        parameter_start=100, parameter_step=10, priority=3),
}


@pytest.mark.parametrize("name", sorted(OPTION_SETS))
def test_dirac_reads_the_jdl_as_written(name):
    opts = OPTION_SETS[name]
    cfg = parse_jdl(build_jdl(opts))
    assert cfg.getOption("Executable") == "/bin/sh"
    assert cfg.getOption("Arguments").split()[0] == "picas-pilot.sh"
    assert cfg.getOption("Parameters", 0) == opts.pilots
    assert cfg.getOption("ParameterStart", -1) == opts.parameter_start
    assert cfg.getOption("ParameterStep", -1) == opts.parameter_step
    assert cfg.getOption("InputSandbox", []) == ["picas-pilot.sh", *opts.input_sandbox]
    outputs = cfg.getOption("OutputSandbox", [])
    assert outputs[:3] == [cfg.getOption("StdOutput"), cfg.getOption("StdError"), "picas-pilot.log"]
    assert cfg.getOption("JobName") == opts.job_name
    expected = {"Site": opts.site, "BannedSites": opts.banned_sites, "Tags": opts.tags}
    for attr, value in expected.items():
        assert cfg.getOption(attr, []) == value
    for attr, value in {"CPUTime": opts.cpu_time, "NumberOfProcessors": opts.number_of_processors,
                        "Platform": opts.platform, "JobGroup": opts.job_group, "Priority": opts.priority}.items():
        if value is None:
            assert attr not in cfg.listOptions()
        else:
            assert str(cfg.getOption(attr)) == str(value)


@pytest.mark.parametrize("name", sorted(OPTION_SETS))
def test_parametric_expansion_gives_one_job_per_pilot(name):
    opts = OPTION_SETS[name]
    jobs = expand_jdl(build_jdl(opts))
    assert len(jobs) == opts.pilots
    indexes = []
    for job in jobs:
        cfg = parse_jdl(job)
        words = cfg.getOption("Arguments").split()
        indexes.append(int(words[words.index("--index") + 1]))
        assert words[words.index("--") + 1:] == opts.pilot_args
        assert words[1:words.index("--index")] == opts.start_args
    assert indexes == [opts.parameter_start + i * opts.parameter_step for i in range(opts.pilots)]


@pytest.mark.parametrize("change, message", [
    ({"job_name": 'say "hi"'}, "double quote"),
    ({"job_group": "a;b"}, "semicolon"),
    ({"site": ["LCG.A.nl, LCG.B.nl"]}, "list item"),
    ({"tags": ["two words"]}, "list item"),
    ({"pilot_args": ["--view", "my view"]}, "shell quoting"),
    ({"input_sandbox": ["/etc/passwd"]}, "relative"),
    ({"input_sandbox": ["../secret.yml"]}, "relative"),
    ({"pilots": 0}, "at least 1"),
    ({"cpu_time": -5}, "at least 1"),
])
def test_values_dirac_would_misread_are_refused(change, message):
    opts = JdlOptions(**{"input_sandbox": SANDBOX, **change})
    with pytest.raises(InvalidInput, match=message):
        build_jdl(opts)


def test_job_ids_of_a_single_and_a_parametric_submission():
    assert jdl.parse_job_ids("JobID = 11\n") == ["11"]
    assert jdl.parse_job_ids("JobID = [5001, 5002, 5003]\n") == ["5001", "5002", "5003"]
    with pytest.raises(SchedulerError, match="ERROR pilot.jdl: Proxy not found"):
        jdl.parse_job_ids("ERROR pilot.jdl: Proxy not found\n")


def test_status_and_kill_output():
    out = ("JobID=2 Status=Done; MinorStatus=Execution Complete; Site=EELA.UTFSM.cl;\n"
           "JobID=3 Status=Waiting; MinorStatus=Pilot Agent Submission; Site=ANY;\n")
    answer = jdl.parse_status(out)
    assert answer["2"] == {"Status": "Done", "MinorStatus": "Execution Complete", "Site": "EELA.UTFSM.cl"}
    assert jdl.states(answer) == {"2": "Done", "3": "Waiting"}
    assert jdl.parse_kill("Killed jobs 2,3\n") == ["2", "3"]


def test_a_pilot_asks_a_processor_for_each_payload_it_runs_at_once():
    from picas.schedulers.base import PilotRequest
    from picas.schedulers.dirac import DiracScheduler

    def processors(pilot_args: list[str], **options) -> int | None:
        request = PilotRequest(count=2, pilot_args=pilot_args, options=options)
        return DiracScheduler().jdl_options(request, SANDBOX).number_of_processors

    assert processors([]) is None
    assert processors(["--slots=4"]) == 4
    assert "NumberOfProcessors = 4" in build_jdl(DiracScheduler().jdl_options(
        PilotRequest(count=2, pilot_args=["--slots=4"]), SANDBOX))
    assert processors(["--slots=4"], number_of_processors=1) == 1, "the user's own value wins"
