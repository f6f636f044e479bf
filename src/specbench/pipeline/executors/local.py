"""The local executor: every model in turn in this process, one engine at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from specbench.pipeline.category_plan import PlannedCell
from specbench.pipeline.executors import ExecutorContext, earlier_run_id, register_executor, split_resumed


@register_executor("local")
class LocalExecutor:
    """Models one after another; each engine is closed before the next model's starts."""

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def run(self, groups: list[list[PlannedCell]], ctx: ExecutorContext) -> Iterator[dict[str, Any]]:
        from specbench.pipeline.executors.runner import ModelRunner

        for cells in groups:
            done, todo = split_resumed(cells, ctx)
            yield from done
            if not todo:
                continue
            first = todo[0].plan
            assert first is not None  # runnable cells have plans
            runner = ModelRunner(first, ctx.use_cache)
            try:
                for cell in todo:
                    yield runner.run(cell, ctx.parent_run_id, earlier_run_id(cell, ctx))
            finally:
                runner.close()
