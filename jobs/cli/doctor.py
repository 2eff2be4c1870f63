"""`pose-service doctor`: what each backend needs, and whether this host's worker settings have it.

Reads the same settings a worker would (environment and the worker's flags) and gives the same
verdicts the worker acts on (worker/backends.py: a backend with a problem is not advertised in
``pose_workers.backends``, so its jobs are never claimed here). ``--check-imports`` also runs the
operator's 4D-Humans interpreter once to see that it imports phalp and hmr2 (slow: torch loads).
Exit status 0 when the default backend (POSE_BACKEND) is usable, 1 when it is not.
"""

from __future__ import annotations

import argparse

from jobs.cli.common import add_setting_flags, settings_from
from jobs.settings import WORKER


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("doctor", help="report what each backend needs and whether it is usable here")
    p.add_argument("--check-imports", action="store_true",
                   help="also run POSE_PHALP_PYTHON to check that it imports phalp and hmr2 (slow)")
    add_setting_flags(p, WORKER)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from worker.backends import POSE_FACTORY, backend_problems, phalp_config
    from worker.pipeline.phalp.smpl import SmplModel, SmplModelError

    settings = settings_from(args)
    problems = backend_problems(settings)
    config = phalp_config(settings)
    if problems["phalp"] is None and args.check_imports:
        problems["phalp"] = config.import_problem()
    needs = {
        "blazepose": f"the BlazePose weights in {settings.model_dir} (pose-service models fetch)"
                     if settings.pipeline == POSE_FACTORY else f"the pipeline {settings.pipeline}",
        "phalp": "a 4D-Humans checkout (POSE_PHALP_DIR) and its interpreter (POSE_PHALP_PYTHON)",
    }
    for name, problem in problems.items():
        default = " (default)" if name == settings.backend else ""
        print(f"{name}{default}: {'usable' if problem is None else 'NOT usable'}")
        print(f"  needs: {needs[name]}")
        if problem is not None:
            print(f"  why not: {problem}")
        elif name == "phalp":
            print(f"  track.py: {config.track_py}\n  python: {config.python}")
            if config.overrides_text:
                print(f"  extra overrides: {config.overrides_text}")
            if not args.check_imports:
                print("  (not checked: whether it imports phalp and hmr2; --check-imports runs it)")
    if config.smpl_model is None:
        print("mesh vertices (phalp, POSE_SMPL_MODEL): not configured; results carry SMPL parameters and joints")
    else:
        try:
            model = SmplModel.load(config.smpl_model)
            print(f"mesh vertices (phalp, POSE_SMPL_MODEL): usable ({model.v_template.shape[0]} vertices, "
                  f"{model.faces.shape[0]} faces)")
        except SmplModelError as exc:
            print(f"mesh vertices (phalp, POSE_SMPL_MODEL): NOT usable: {exc}")
    return 0 if problems[settings.backend] is None else 1
