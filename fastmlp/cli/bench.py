"""``fastmlp bench``: hands everything after 'bench' to fastmlp.bench."""

from .common import CLIError


def cmd_bench(args, rest=()):
    try:
        from .. import bench
    except ImportError as exc:
        raise CLIError(f"the benchmarks are not available in this installation "
                       f"(fastmlp.bench could not be imported: {exc})") from None
    if not hasattr(bench, "main"):
        raise CLIError("fastmlp.bench has no main(argv); the benchmarks are not installed")
    return bench.main(list(rest))
