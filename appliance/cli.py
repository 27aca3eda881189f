"""The command line (a contract: see shared/design/ARCHITECTURE.md): run, analyze, photo, eval, bench, models,
config check, doctor.

This is an edge: ApplianceError becomes one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from appliance import __version__
from appliance.errors import ApplianceError, command_line, one_line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m appliance", description="OIVIS Edge appliance")
    parser.add_argument("--version", action="version", version=f"oivis-appliance {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the kiosk")
    run.add_argument("--config", type=Path, help="TOML configuration file (defaults apply without one)")
    run.add_argument("--source", help="camera:N, video:PATH, image:PATH, demo or auto")
    run.add_argument("--backend", help="auto, litert or rknn (overrides the config)")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--windowed", action="store_true", help="a window instead of fullscreen")
    mode.add_argument("--headless", action="store_true", help="no display (SDL dummy driver)")
    run.add_argument("--frames", type=int, help="stop after this many camera frames were shown")

    analyze = commands.add_parser("analyze", help="perception on still images, JSON Lines on stdout")
    analyze.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="PNG or JPEG images")
    analyze.add_argument("--json", action="store_true",
                         help="JSON Lines, one object per input: the default and only output (accepted for scripts)")
    analyze.add_argument("--mask-out", type=Path, metavar="DIR", help="write each person mask here as PNG")
    analyze.add_argument("--backend", default="auto")
    analyze.add_argument("--config", type=Path, help="take the [media] size limits and the [pose] and [face] keys "
                         "(age_gender: each face's age and gender) from this file")

    photo = commands.add_parser("photo", help="the photo booth's photo of still images, JSON Lines on stdout")
    photo.add_argument("paths", nargs="+", type=Path, metavar="INPUT", help="PNG or JPEG camera frames")
    photo.add_argument("--campaign", type=Path, required=True, metavar="DIR", help="the campaign bundle ([photo])")
    photo.add_argument("--out-dir", type=Path, required=True, metavar="DIR", help="write the photos here")
    photo.add_argument("--json", action="store_true",
                       help="JSON Lines, one object per input: the default and only output (accepted for scripts)")
    photo.add_argument("--world", metavar="ID", help="the scene to take the photo in (default: [photo] world, "
                       "else the campaign's first)")
    photo.add_argument("--backend", default="auto")
    photo.add_argument("--style", metavar="NAME", help="paint the photos in this style of the campaign's [photo] styles")
    photo.add_argument("--stroke", choices=("fine", "medium", "bold"),
                       help="the style's stroke size (default: the campaign's for the style)")
    photo.add_argument("--config", type=Path, help="take the [media] size limits and the [pose] keys from this file")

    bench = commands.add_parser("bench", help="time the full pipeline per stage")
    bench.add_argument("source", help="camera:N, video:PATH, image:PATH, demo, or a video or image path")
    bench.add_argument("--frames", type=int, default=200)
    bench.add_argument("--json", action="store_true", help="machine-readable output")
    bench.add_argument("--backend", help="auto, litert or rknn (default: the config's)")
    bench.add_argument("--threads", type=int, help="CPU threads per model (default: the config's)")
    bench.add_argument("--cores", type=int, help="keep the whole frame path to this many CPU cores, with as many "
                       "inference threads a model unless --threads says (1: a one-core board's proxy)")
    bench.add_argument("--profile",
                       help="perception profile: full, cpu-board (an RK3399's caps) or auto (default: the config's)")
    bench.add_argument("--screen", default="1920x1080", help="WxH of the composited screen")
    bench.add_argument("--world", type=int, default=0, help="which world of the content bundle")
    bench.add_argument("--models", metavar="LIST", help="comma-separated models perception runs: segmentation, "
                       "hands, pose, face, age (default: the default experience's, segmentation,hands); campaign: "
                       "every model the campaign's experiences use, its first photo's included")
    bench.add_argument("--compositor",
                       help="where the world is composited: auto, gpu or cpu (default: the config's [display])")
    bench.add_argument("--on-screen", action="store_true",
                       help="draw in a window on the screen (a board's GPU) instead of SDL's dummy driver")
    bench.add_argument("--config", type=Path,
                       help="take content, segmentation settings and [media] limits from this file")

    evaluate = commands.add_parser("eval", help="measure perception on labelled data")
    evaluate.add_argument("task", choices=["gestures", "pose"])
    evaluate.add_argument("directory", type=Path, metavar="DIR",
                          help="gestures: one subfolder per expected label; pose: images and their labels.toml")
    evaluate.add_argument("--json", action="store_true", help="machine-readable output")
    evaluate.add_argument("--backend", default="auto")
    evaluate.add_argument("--reference-python", metavar="PYTHON",
                          help="pose: also score the reference (a python with mediapipe, e.g. .venv-ref/bin/python)")
    evaluate.add_argument("--reference-poses", type=int, default=4, metavar="N",
                          help="pose: the reference's num_poses (default 4)")

    models = commands.add_parser("models", help="fetch and verify the model files")
    models.add_argument("action", choices=["fetch", "verify"])

    config = commands.add_parser("config", help="validate a configuration file")
    config.add_argument("action", choices=["check"])
    config.add_argument("file", type=Path, metavar="FILE")

    doctor = commands.add_parser("doctor", help="the device's health checks, pass/fail with the fix for each")
    doctor.add_argument("--config", type=Path, help="TOML configuration file (default: /etc/oivis/appliance.toml)")
    return parser


def _run(args: argparse.Namespace) -> int:
    from appliance.compose import run_kiosk
    from appliance.config import DEFAULT_CONFIG_PATH
    from appliance.configtrial import ConfigTrial
    from appliance.kiosk.display import DisplayMode
    from appliance.service.logging import journal_context

    config_path = args.config or DEFAULT_CONFIG_PATH
    trial = ConfigTrial(config_path)
    rolled_back = trial.starting()
    if trial.pending:
        try:   # the file on trial alone: a mistake on the command line is not the file's fault
            _run_config(argparse.Namespace(config=config_path, source=None, backend=None))
        except ApplianceError as exc:
            rolled_back = trial.roll_back(f"it does not pass the checks run makes at start: {one_line(exc)}")
    config = _run_config(args)
    journal_context.update(device=config.device_id)
    if args.headless:
        mode = DisplayMode.HEADLESS
    elif args.windowed or not config.display.fullscreen:
        mode = DisplayMode.WINDOWED
    else:
        mode = DisplayMode.FULLSCREEN
    return run_kiosk(config, mode, args.frames, config_path, rolled_back)


def _run_config(args: argparse.Namespace):
    """The configuration ``run`` starts with (``preflight.run_config``), from the command line's arguments."""
    from appliance.preflight import run_config

    return run_config(args.config, args.source, args.backend)


def _analyze(args: argparse.Namespace) -> int:
    from appliance.analyze import analyze
    from appliance.config import load_config
    from appliance.inference.backend import Inference

    config = load_config(args.config)
    failures = analyze(args.paths, Inference(args.backend), args.mask_out, sys.stdout, config.media,
                       config.pose.settings(), config.face.settings(), config.face.age_gender)
    if failures:
        raise ApplianceError(f"{failures} of {len(args.paths)} input(s) could not be analysed (see their \"error\")")
    return 0


def _photo(args: argparse.Namespace) -> int:
    from appliance.config import load_config
    from appliance.inference.backend import Inference
    from appliance.photo.command import photo

    config = load_config(args.config)
    failures = photo(args.paths, args.campaign, args.out_dir, Inference(args.backend), sys.stdout, config.media,
                     args.world, pose=config.pose.settings(), style=args.style, stroke=args.stroke)
    if failures:
        raise ApplianceError(f"{failures} of {len(args.paths)} input(s) gave no photo (see their \"error\")")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from appliance.bench import BenchSetup, format_table, needs_of, pin_to_cores, run_bench
    from appliance.config import load_config
    from appliance.content import load_bundle
    from appliance.kiosk.display import screen_size
    from appliance.perception.demo import demo_image
    from appliance.sources.open import open_source

    config = load_config(args.config)
    needs = needs_of(args.models, load_bundle(config.kiosk.content) if args.models == "campaign" else None)
    cores = pin_to_cores(args.cores) if args.cores is not None else None
    given = {"backend": args.backend, "threads": args.threads or args.cores, "profile": args.profile}
    settings = config.inference.model_copy(update={key: value for key, value in given.items() if value})
    setup = BenchSetup(
        source=open_source(args.source, paced=False, limits=config.media, demo=demo_image),
        inference=settings.inference(),
        content=config.kiosk.content,
        world=args.world,
        screen=screen_size(args.screen),
        matte=config.segmentation.matte(),
        limits=config.media,
        needs=needs,
        parallel=settings.parallel,
        pose=config.pose.settings(),
        face=config.face.settings(),
        profile=settings.perception_profile(),
        cores=cores,
        compositor=args.compositor or config.display.compositor,
        on_screen=args.on_screen,
        photo=config if args.models == "campaign" else None,
    )
    result = run_bench(setup, args.frames)
    print(json.dumps(result) if args.json else format_table(result))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from appliance.evaluate import eval_gestures, eval_pose, format_pose_report, format_report
    from appliance.inference.backend import Inference

    if args.task == "pose":
        report = eval_pose(args.directory, Inference(args.backend), args.reference_python, args.reference_poses)
        print(json.dumps(report) if args.json else format_pose_report(report))
    else:
        report = eval_gestures(args.directory, Inference(args.backend))
        print(json.dumps(report) if args.json else format_report(report))
    return 1 if report["errors"] else 0   # as analyze: an image that could not be read fails the run


def _models(args: argparse.Namespace) -> int:
    from appliance.inference.fetch import fetch_models, missing_or_corrupt
    from appliance.inference.manifest import Manifest

    if args.action == "fetch":
        fetch_models()
        return 0
    bad = missing_or_corrupt(Manifest.load())
    if bad:
        raise ApplianceError(f"missing or corrupt model(s): {', '.join(bad)}; run `make models`")
    print("models: all present and verified")
    return 0


def _config(args: argparse.Namespace) -> int:
    from appliance.config import load_config
    from appliance.preflight import require
    from appliance.tomlfile import InvalidFile

    try:
        config = require(load_config(args.file), args.file)
    except InvalidFile as exc:
        for problem in exc.problems:
            print(f"{exc.path}: {problem}", file=sys.stderr)
        print(f"{exc.path}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return 1
    fleet = config.fleet
    link = f"broker {fleet.broker} ({'TLS' if fleet.tls else 'no TLS'})" if fleet.broker else "fleet link off"
    print(f"{args.file}: ok — device {config.device_id}, source {config.source.uri}, backend "
          f"{config.inference.backend}, {link}, {len(config.campaigns.trusted_keys)} trusted key(s), "
          f"state in {config.paths.state_dir}")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from appliance.doctor import run_doctor

    return run_doctor(args.config, sys.stdout)


COMMANDS = {"run": _run, "analyze": _analyze, "bench": _bench, "eval": _eval, "models": _models,
            "config": _config, "doctor": _doctor, "photo": _photo}


@command_line
def main(argv: list[str] | None = None) -> int:
    from appliance.service.logging import configure_logging

    args = _parser().parse_args(argv)
    configure_logging(args.verbose)
    return COMMANDS[args.command](args)
