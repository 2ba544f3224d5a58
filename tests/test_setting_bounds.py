"""Every integer setting of every algorithm has bounds: a value outside them is refused in one line
naming the setting, before anything is allocated; a value inside them builds an agent without a
hang or a huge allocation.  Integers are read as integers, never through float."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import time
import typing
from pathlib import Path

import pytest
import yaml

from deeprl import ALGORITHMS
from deeprl.agents.dqn import DQNConfig
from deeprl.agents.dreamer import DreamerConfig
from deeprl.agents.ppo import PPOConfig
from deeprl.agents.worldmodel import WorldModelConfig
from deeprl.config import build_config, describe, parse_assignments
from deeprl.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
FUZZ = (-1, 0, 2**31, 2**63, 10**30)
LINUX = Path("/proc/self/status").exists()


def integer_settings(config_cls) -> list[tuple[str, bool]]:
    """(name, is a list of layer widths) of every int and list[int] setting."""
    hints = typing.get_type_hints(config_cls)
    return [(f.name, hints[f.name] == list[int]) for f in dataclasses.fields(config_cls)
            if hints[f.name] in (int, list[int])]


def try_build(config_cls, name: str, value) -> object | str:
    """The config, or the ConfigError's message (which must be one line naming the setting)."""
    try:
        return build_config(config_cls, {name: value})
    except ConfigError as e:
        message = str(e)
        assert "\n" not in message and (repr(name) in message or f"{name} " in message), message
        assert len(message) < 400, message
        return message


def accepted_huge(algo: str) -> list[dict]:
    """Settings of ``algo`` that accept a fuzz value of 2**31 or more."""
    cls = ALGORITHMS[algo].config_cls
    out = []
    for name, is_list in integer_settings(cls):
        for v in FUZZ:
            if v >= 2**31 and not isinstance(try_build(cls, name, [v] if is_list else v), str):
                out.append({name: [v] if is_list else v})
    return out


@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_every_integer_setting_is_accepted_or_refused_in_one_line(algo):
    cls = ALGORITHMS[algo].config_cls
    settings = integer_settings(cls)
    assert len(settings) >= 11  # the RunConfig ones at least
    for name, is_list in settings:
        for v in FUZZ:
            for given in (v, str(v)):
                value = ([given] if not isinstance(given, str) else f"[{given}]") if is_list else given
                t = time.perf_counter()
                result = try_build(cls, name, value)
                assert time.perf_counter() - t < 1.0, (name, v)
                if not isinstance(result, str):  # accepted: exactly the integer given
                    got = getattr(result, name)
                    assert got == ([v] if is_list else v) and type(got[0] if is_list else got) is int, (name, v)
            # no setting has a use for 2**63 or 10**30: each has an upper bound below them
            if v >= 2**63:
                assert isinstance(try_build(cls, name, [v] if is_list else v), str), (algo, name, v)


@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_bounds_are_named_in_the_message(algo):
    cls = ALGORITHMS[algo].config_cls
    for name, is_list in integer_settings(cls):
        message = try_build(cls, name, [10**30] if is_list else 10**30)
        assert isinstance(message, str) and "<=" in message, (name, message)


_CHILD = textwrap.dedent("""
    import json, resource, signal, sys, time
    from deeprl import ALGORITHMS
    from deeprl.config import build_config
    from deeprl.errors import DeepRLError

    def vm(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

    # a construction that allocates more than 3 GiB fails here instead of taking the machine's memory
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (vm("VmSize") + 3 * 2**30, hard))

    def too_slow(*_):
        raise TimeoutError("construction took over 60 s")

    signal.signal(signal.SIGALRM, too_slow)
    for algo, settings in json.load(sys.stdin):
        cls = ALGORITHMS[algo]
        rss, t = vm("VmRSS"), time.perf_counter()
        signal.alarm(60)
        try:
            agent = cls.from_config(build_config(cls.config_cls, settings))
            grown = vm("VmRSS") - rss
            agent.close()
            outcome = "built"
        except DeepRLError as e:
            grown, outcome = vm("VmRSS") - rss, "refused: " + str(e)
        except BaseException as e:
            grown, outcome = vm("VmRSS") - rss, f"crashed: {type(e).__name__}: {e}"[:300]
        finally:
            signal.alarm(0)
        print(json.dumps([algo, settings, outcome, time.perf_counter() - t, grown]), flush=True)
        if outcome.startswith("crashed"):
            break
""")


def construct_in_child(cases: list[tuple[str, dict]]) -> list[list]:
    """Build an agent (CartPole) for each case in one subprocess under a memory limit; never trains."""
    proc = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(cases), capture_output=True, text=True,
                          timeout=900, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("[")]
    assert len(results) == len(cases), (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    return results


def check_constructions(results: list[list]) -> None:
    for algo, settings, outcome, seconds, grown in results:
        assert outcome == "built" or (outcome.startswith("refused: ") and "\n" not in outcome), \
            (algo, settings, outcome)
        assert seconds < 60 and grown < 2**30, (algo, settings, outcome, seconds, grown)


@pytest.mark.skipif(not LINUX, reason="measures memory through /proc")
def test_accepted_huge_values_build_without_a_hang_or_a_huge_allocation():
    cases = [(algo, settings) for algo in ALGORITHMS for settings in accepted_huge(algo)]
    names = {name for _, settings in cases for name in settings}
    assert {"seed", "total_steps", "eval_freq"} <= names  # step counts and seeds take 2**31
    check_constructions(construct_in_child(cases))


@pytest.mark.skipif(not LINUX, reason="measures memory through /proc")
def test_every_setting_at_its_upper_bound_builds_or_is_refused_in_one_line():
    """The largest value each bound lets through builds an agent cheaply (or is refused, in one
    line, by a check of the whole config or of the machine's memory).  The settings every
    algorithm shares are built with DQN only."""
    shared = {f.name for f in dataclasses.fields(ALGORITHMS["dqn"].config_cls)} & \
        {f.name for f in dataclasses.fields(ALGORITHMS["dreamer"].config_cls)}
    cases = []
    for algo, agent_cls in ALGORITHMS.items():
        fields = {f.name: f for f in dataclasses.fields(agent_cls.config_cls)}
        for name, is_list in integer_settings(agent_cls.config_cls):
            if name in shared and algo != "dqn":
                continue
            meta = fields[name].metadata
            values = [[meta["item_max"]], [64] * meta["max_len"]] if is_list else [meta["max"]]
            for value in values:
                if not isinstance(try_build(agent_cls.config_cls, name, value), str):
                    cases.append((algo, {name: value}))
    assert len(cases) > 40
    check_constructions(construct_in_child(cases))


# ------------------------------------------------------------------------------------- particular bounds


def test_bounds_that_follow_from_use():
    # seeds: what NumPy's PCG64 and torch.manual_seed both take
    assert build_config(DQNConfig, {"seed": 2**63 - 1}).seed == 2**63 - 1
    with pytest.raises(ConfigError, match=r"'seed' must be >= 0 and <= 9223372036854775807 \(2\*\*63 - 1\)"):
        build_config(DQNConfig, {"seed": 2**63})
    # step counts: what a checkpoint's state.json is read back with
    assert build_config(DQNConfig, {"total_steps": 2**62 - 1}).total_steps == 2**62 - 1
    with pytest.raises(ConfigError, match="'total_steps' must be >= 1 and <= 4611686018427387903"):
        build_config(DQNConfig, {"total_steps": 2**62})
    # pixels: GridCNN's 3x3 convolution needs 3 pixels a side (1 and 2 built a run that failed at its first step)
    for pixels in (1, 2, 257):
        with pytest.raises(ConfigError, match=r"'pixels' must be 0 \(off\) or >= 3 and <= 256, got"):
            build_config(DQNConfig, {"pixels": pixels})
    assert build_config(DQNConfig, {"pixels": 3}).pixels == 3
    with pytest.raises(ConfigError, match="'num_envs' must be >= 1 and <= 4096, got 4097"):
        build_config(DQNConfig, {"num_envs": 4097})
    with pytest.raises(ConfigError, match="'torch_threads' must be >= 0 and <= 1024"):
        build_config(DQNConfig, {"torch_threads": 1025})
    with pytest.raises(ConfigError, match="'buffer_size' must be >= 1 and <= 1000000000"):
        build_config(DQNConfig, {"buffer_size": 10**9 + 1})


def test_layer_widths_depths_and_their_weights():
    with pytest.raises(ConfigError, match=r"'net_arch' needs layer sizes >= 1 and <= 65536, got 0 in \[64, 0\]"):
        build_config(DQNConfig, {"net_arch": "[64,0]"})
    with pytest.raises(ConfigError, match="'net_arch' has 65 layers, at most 64"):
        build_config(PPOConfig, {"net_arch": [8] * 65})
    with pytest.raises(ConfigError, match="'net_arch' has 1000000 layers"):  # refused before reading the items
        build_config(PPOConfig, {"net_arch": ",".join(["x"] * 10**6)})
    # every width allowed, but two wide layers in a row would be 2 x 4 GiB of weights
    build_config(DQNConfig, {"net_arch": [65536]})
    with pytest.raises(ConfigError, match=r"net_arch \[65536, 65536\] make networks of about [\d,]+ weights; at most"):
        build_config(DQNConfig, {"net_arch": [65536, 65536]})
    with pytest.raises(ConfigError, match="deter 65536, stoch 16.* weights; at most"):
        build_config(DreamerConfig, {"deter": 65536})
    with pytest.raises(ConfigError, match="latent_dim 65536.* weights; at most"):
        build_config(WorldModelConfig, {"latent_dim": 65536})
    for name in ("L", "M", "S", "debug"):  # the shipped Dreamer sizes stay well inside
        from deeprl.config import preset_for
        build_config(DreamerConfig, preset_for("dreamer", name))


def test_sizes_that_only_a_combination_makes_too_large():
    from deeprl.agents.pg import A2CConfig, ReinforceConfig
    with pytest.raises(ConfigError, match=r"n_steps 2048 x num_envs 4096 = 8388608 steps per rollout; at most 4194304"):
        build_config(PPOConfig, {"num_envs": 4096})
    build_config(ReinforceConfig, {"num_envs": 4096, "n_steps": 2**22})  # collects episodes: n_steps unused
    build_config(A2CConfig, {"num_envs": 4096})
    with pytest.raises(ConfigError, match=r"batch_size 4096 x batch_length 1024 = 4,194,304 steps per world-model"):
        build_config(DreamerConfig, {"batch_size": 4096, "batch_length": 1024})
    with pytest.raises(ConfigError, match="imagined states per update"):
        build_config(DreamerConfig, {"imagine_starts": 0, "batch_size": 1024, "batch_length": 1024, "horizon": 2})
    # a sequence longer than the replay keeps per env could never be sampled: training would never start
    with pytest.raises(ConfigError, match=r"batch_length 64 exceeds the 50 steps the replay keeps per env"):
        build_config(DreamerConfig, {"buffer_size": 400, "num_envs": 8})
    with pytest.raises(ConfigError, match="batch_size 300 exceeds buffer_size 200"):
        build_config(WorldModelConfig, {"batch_size": 300, "buffer_size": 200})


def test_a_config_built_directly_is_checked_too():
    with pytest.raises(ConfigError, match="'num_envs' must be >= 1 and <= 4096, got 10000000000"):
        DQNConfig(num_envs=10**10)
    with pytest.raises(ConfigError, match="'batch_size' expects int"):
        DQNConfig(batch_size="lots")
    assert DQNConfig(seed="9007199254740993").seed == 9007199254740993  # coerced as build_config does
    with pytest.raises(ConfigError, match="'seed' must be >= 0"):
        dataclasses.replace(DQNConfig(), seed=-1)


# ------------------------------------------------------------------------------------- parsing


def test_integers_are_parsed_as_integers():
    big = 9007199254740993  # 2**53 + 1: float() turns it into 2**53
    assert build_config(DQNConfig, parse_assignments([f"seed={big}"])).seed == big
    assert build_config(DQNConfig, yaml.safe_load(f"seed: {big}")).seed == big
    assert build_config(DQNConfig, {"total_steps": f"{big}"}).total_steps == big
    assert build_config(DQNConfig, parse_assignments(["net_arch=[9007,1e3]"])).net_arch == [9007, 1000]
    # exponent and decimal forms are read exactly (decimal, not float), where they are whole numbers
    c = build_config(DQNConfig, parse_assignments(["total_steps=1e5", "buffer_size=2.5e3", "batch_size=32.0",
                                                   "learning_starts=1_000"]))
    assert (c.total_steps, c.buffer_size, c.batch_size, c.learning_starts) == (100_000, 2_500, 32, 1_000)
    assert build_config(DQNConfig, {"seed": "9007199254740993e0"}).seed == big
    for text in ("32.5", "1e-3", "nan", "inf", "0x10", "", "1e5.5"):
        with pytest.raises(ConfigError, match="'batch_size' expects int"):
            build_config(DQNConfig, {"batch_size": text})
    # a float beyond 2**53 cannot say which integer was meant
    with pytest.raises(ConfigError, match="'seed' expects int, got the float .*beyond 2\\*\\*53"):
        build_config(DQNConfig, {"seed": float(2**53 + 2)})
    assert build_config(DQNConfig, {"seed": 1e15}).seed == 10**15
    # NumPy's integers (a sweep's draws) are integers
    import numpy as np
    assert build_config(DQNConfig, {"batch_size": np.int64(64)}).batch_size == 64
    # a number too long to be any setting's is refused without being written out
    for text in ("1e1000000000", "9" * 100_000):
        t = time.perf_counter()
        with pytest.raises(ConfigError, match="'seed' must be >= 0 and <= 9223372036854775807") as e:
            build_config(DQNConfig, {"seed": text})
        assert time.perf_counter() - t < 1 and len(str(e.value)) < 300
    with pytest.raises(ConfigError, match="got an integer of about 5001 digits"):
        build_config(DQNConfig, {"seed": 10**5000})


def test_steps_flag_is_parsed_as_an_integer():
    import argparse

    from deeprl.cli import _positive_int
    assert _positive_int("9007199254740993") == 9007199254740993
    assert _positive_int("1e6") == _positive_int("1_000_000") == 10**6
    assert _positive_int(str(2**62 - 1)) == 2**62 - 1
    for text in ("0", "-1", "1.5", str(2**62), "1e30", "lots", "1e1000000000"):
        with pytest.raises(argparse.ArgumentTypeError, match="positive integer"):
            _positive_int(text)


def test_seeds_flag_is_bounded(capsys):
    """bench and sweep make a list of every seed: 1e30 of them would fill the memory."""
    from deeprl.cli import _parser
    for command in (["bench", "--out", "b"], ["sweep", "ppo"]):
        assert _parser().parse_args([*command, "--seeds", "10000"]).seeds == 10_000
        with pytest.raises(SystemExit) as e:
            _parser().parse_args([*command, "--seeds", "1e30"])
        assert e.value.code == 2 and "positive integer of at most 10000" in capsys.readouterr().err


def test_help_config_shows_the_bounds():
    text = describe(DQNConfig)
    assert "[>= 1 and <= 4096]" in text and "[0 (off) or >= 3 and <= 256]" in text
    assert "[each >= 1 and <= 65536; at most 64 layers]" in text


# ------------------------------------------------------------------------------------- the command line


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    def limit_memory():  # a regression must fail the test, not fill the machine's memory
        import resource
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, hard))

    return subprocess.run([sys.executable, "-m", "deeprl", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          preexec_fn=limit_memory if LINUX else None)


def test_cli_refuses_a_huge_num_envs_in_one_line_fast(tmp_path):
    t = time.perf_counter()
    proc = _cli("train", "dqn", "--set", "num_envs=1000000000000000000000000000000", "--out", str(tmp_path / "r"))
    elapsed = time.perf_counter() - t
    err = proc.stderr.strip()
    assert proc.returncode == 2, err[-2000:]
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "'num_envs' must be >= 1 and <= 4096" in err
    assert elapsed < 60 and not (tmp_path / "r").exists()


def test_cli_refuses_a_steps_flag_beyond_the_step_counts():
    proc = _cli("train", "dqn", "--steps", str(2**62), "--help-config")  # the flag is read before anything runs
    assert proc.returncode == 2 and "positive integer of at most 2**62 - 1" in proc.stderr
    assert "Traceback" not in proc.stderr
