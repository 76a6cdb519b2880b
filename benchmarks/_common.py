"""Shared set-up of the benchmarks: one tiny model, one set of prompts, timing helpers.

Every benchmark compares a run against its baseline IN THE SAME PROCESS, on the same model and
the same prompts, and prints the ratio: absolute times depend on the machine (and on whatever else
shares its CPU); the ratios are what the docs report.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import warnings

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")

# `python benchmarks/x.py` from a checkout works without an install too.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import torch  # noqa: E402

# Big enough that the weights dominate memory (about 2.8M parameters, 11 MB in fp32), small
# enough for 2 CPU cores. The spec language is documented in emergent_alignment/tiny.py.
MODEL_SPEC = "tiny:llama?hidden=256&layers=4&heads=4&vocab=512"
N_PROMPTS = 16
N_CHATS = 32
MAX_LENGTH = 256
LORA = dict(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")


def quiet():
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        from datasets.utils.logging import disable_progress_bar, set_verbosity_error

        set_verbosity_error()
        disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


DEFAULT_THREADS = 1


def setup(threads: int | None = DEFAULT_THREADS):
    """Quiet logs; on a CPU, pin torch to `threads` threads (0 or None: torch's default).

    On a CPU shared with other jobs (2 cores here), two OpenMP threads spin-wait on each other
    whenever one is descheduled: times grew 3-5x and became far noisier than with one thread. So
    the benchmarks use ONE thread on a CPU by default; `--threads 0` keeps torch's default.
    """
    quiet()
    if threads and device().type == "cpu":
        torch.set_num_threads(threads)


def add_threads_arg(ap):
    ap.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help="torch CPU threads (default 1, see _common.setup; 0 = torch's default)",
    )


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def model_dir() -> str:
    from emergent_alignment.tiny import build_tiny

    return build_tiny(MODEL_SPEC)  # built once, then cached


def load(to_device: bool = True):
    from emergent_alignment.models import load_model

    model, tok = load_model(model_dir())
    if to_device:
        model.to(device())
    return model, tok


def prompts(n: int = N_PROMPTS) -> list[list[dict]]:
    """The first n vendored free-form probe prompts (the prompts every benchmark uses)."""
    from emergent_alignment.data import load_prompts

    return load_prompts("probes:freeform", limit=n)


def chats(n: int = N_CHATS) -> list[list[dict]]:
    """SFT data: the first n chats of the vendored EM insecure set (held-out split excluded)."""
    from emergent_alignment.data import load_chats

    return load_chats("em:insecure", limit=n)


def peft_config():
    from peft import LoraConfig

    return LoraConfig(**LORA)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def median(xs):
    return statistics.median(xs)


def spread(xs) -> str:
    return f"min {min(xs):.4f}  max {max(xs):.4f}  n={len(xs)}"


def timed(fn):
    """(seconds, result) of one call, synchronised on CUDA."""
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - t0, out


def force_pairs(conscience):
    """Make the conscience flag every probe answer and pass every correction, deterministically.

    The real forward passes still run (their cost is part of the step): only the verdicts are
    overridden afterwards, because a random tiny model's verdicts are noise and would give a
    random number of pairs. Verdicts made inside `correct` (the corrections) pass with
    p_aligned 0.9; all others (the probe answers) are flagged with p_aligned 0.1.
    """
    from emergent_alignment.conscience import Conscience, Verdict

    real_review = conscience.review
    state = {"correcting": False}

    def review(convs, texts, reasonings=None):
        real_review(convs, texts, reasonings)
        ok = state["correcting"]
        return [Verdict(0.9 if ok else 0.1, not ok, 0.0, 0.0) for _ in texts]

    def correct(convs, responses, **kwargs):
        state["correcting"] = True
        try:
            return Conscience.correct(conscience, convs, responses, **kwargs)  # calls conscience.review above
        finally:
            state["correcting"] = False

    conscience.review = review
    conscience.correct = correct
    return conscience


def drop_printing_callbacks(trainer):
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)
    return trainer


def logged(trainer, key) -> list[float]:
    return [h[key] for h in trainer.state.log_history if key in h]


def environment() -> str:
    import platform

    import transformers
    import trl

    dev = device()
    name = torch.cuda.get_device_name(0) if dev.type == "cuda" else platform.processor() or platform.machine()
    return (
        f"device {dev.type} ({name}), torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs visible, transformers {transformers.__version__}, trl {trl.__version__}"
    )


def header(title: str):
    print(f"\n=== {title} ===")


def ratio_line(label: str, value: float, meaning: str):
    print(f"RATIO {label} = {value:.2f}  ({meaning})")


class CountGenerated:
    """Inside the block, counts the tokens every Hugging Face `generate` call produces, whoever calls it.

    It wraps `GenerationMixin.generate` (a PEFT model's `generate` reaches it too), so our trainer
    and TRL's are counted the same way: each row's new tokens up to and including its first stop
    token (the call's `eos_token_id`, else its generation config's), or all of them when it never stops.
    `seconds` is the wall time spent inside those calls (synchronised on CUDA). `tokens`, `calls` and
    `seconds` only grow; read differences around what you measure.
    """

    def __init__(self):
        self.tokens = 0
        self.calls = 0
        self.seconds = 0.0

    def __enter__(self):
        import functools

        from transformers.generation.utils import GenerationMixin

        real = self._real = GenerationMixin.generate

        @functools.wraps(real)
        def generate(model, *args, **kwargs):
            sync()
            t0 = time.perf_counter()
            out = real(model, *args, **kwargs)
            sync()
            self.seconds += time.perf_counter() - t0
            prompt = kwargs.get("input_ids", args[0] if args else None)
            seqs = out if isinstance(out, torch.Tensor) else out.sequences
            config = kwargs.get("generation_config") or model.generation_config
            stops = kwargs.get("eos_token_id")
            stops = config.eos_token_id if stops is None else stops
            stops = set([stops] if isinstance(stops, int) else (stops or []))
            for row in seqs[:, prompt.shape[1] :].tolist():
                self.tokens += next((i + 1 for i, t in enumerate(row) if t in stops), len(row))
            self.calls += 1
            return out

        GenerationMixin.generate = generate
        return self

    def __exit__(self, *exc):
        from transformers.generation.utils import GenerationMixin

        GenerationMixin.generate = self._real
        return False
