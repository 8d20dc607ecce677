"""``diffview train`` as one process of a torchrun job, traced for tests/test_distributed.py (not part of diffview).

    python -m torch.distributed.run --nproc_per_node=2 tests/ddp_probe.py train …

DIFFVIEW_TEST_TRACE=FILE  each rank appends one JSON line per step: rank, step, loss, a hash of its
                          parameters, its batch's sample count, whether it has a run folder, its pid,
                          and a hash of the dropout masks it drew in the step (None without dropout).
DIFFVIEW_TEST_HANG=R:S    rank R stops answering (sleeps) after step S, as a stuck process would.
DIFFVIEW_TEST_EXIT=R:S    rank R dies (exit code 3, no clean-up) after step S.
"""

import hashlib
import json
import os
import signal
import sys
import time

from diffview import cli
from diffview.core.train import trainer as training
from diffview.core.train.rng import GeneratorDropout

_run = training.Trainer.run


def traced_run(self):
    rank = int(os.environ.get("RANK", "0"))
    trace, hang = os.environ.get("DIFFVIEW_TEST_TRACE"), os.environ.get("DIFFVIEW_TEST_HANG")
    die = os.environ.get("DIFFVIEW_TEST_EXIT")
    masks = []  # this step's dropout masks, as the units each GeneratorDropout zeroed

    def record(module, inputs, output):
        if module.training and module.p > 0:
            masks.append((output == 0).cpu().numpy().tobytes())

    hooked = False
    for ev in _run(self):
        if not hooked and self.model is not None:
            hooked = True
            for m in self.model.modules():
                if isinstance(m, GeneratorDropout):
                    m.register_forward_hook(record)
        if isinstance(ev, training.StepEvent) and trace:
            h = hashlib.sha256()
            for p in self.model.parameters():
                h.update(p.detach().cpu().numpy().tobytes())
            with open(trace, "a", encoding="utf-8") as f:
                f.write(json.dumps({"rank": rank, "step": ev.step, "loss": ev.loss, "params": h.hexdigest(),
                                    "samples": len(ev.losses), "writes": self.run_dir is not None,
                                    "pid": os.getpid(),
                                    "dropout": hashlib.sha256(b"".join(masks)).hexdigest() if masks else None}) + "\n")
            masks.clear()
        if isinstance(ev, training.StepEvent) and hang == f"{rank}:{ev.step}":
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            time.sleep(600)
        if isinstance(ev, training.StepEvent) and die == f"{rank}:{ev.step}":
            os._exit(3)
        yield ev


training.Trainer.run = traced_run
sys.exit(cli.main(sys.argv[1:]))
