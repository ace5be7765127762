"""Batch processing of video libraries: N sources × M targets, resumable, local or on Ray.

Python use (what ``dtgan batch`` does)::

    from dtgan_plugin.batch import BatchOptions, plan_from_folders, run_batch

    plan = plan_from_folders("clips/", "faces/", out_dir="out/", pairing="all")
    summary = run_batch(plan, BatchOptions(checkpoint="model.safetensors", jobs=2))
    print(summary["done"], summary["failed"], summary["frames_per_s"])

Jobs and their report rows are described in :mod:`dtgan_plugin.batch.jobs`; the shared
orchestration (skip finished jobs, dynamics cache, progress, summary) in
:mod:`dtgan_plugin.batch.runner`; executors in :mod:`~dtgan_plugin.batch.local` and
:mod:`~dtgan_plugin.batch.ray_executor`.
"""

from .jobs import (DEFAULT_TEMPLATE, REPORT_NAME, TEMPLATE_FIELDS, Job, JobOptions, JobResult,
                   Plan, Report, parse_shard, plan_from_folders, plan_from_manifest,
                   select_shard)
from .runner import BatchOptions, JobRunner, clean_partials, format_summary, run_batch

__all__ = ["DEFAULT_TEMPLATE", "REPORT_NAME", "TEMPLATE_FIELDS", "BatchOptions", "Job",
           "JobOptions", "JobResult", "JobRunner", "Plan", "Report", "clean_partials",
           "format_summary", "parse_shard", "plan_from_folders", "plan_from_manifest",
           "run_batch", "select_shard"]
