"""Models page: your dataset, checked; any task's model trained on it as a job; each task's models and default.

Issue 12 ("Models page"): pick a task and a dataset (a zip for a small set, a
folder under the data roots for a large one), see the ``medlim data check``
summary and every problem, train or fine-tune (SCU-Net, steatosis, TEND /
CVAD, OSCARS, PMS), follow the progress and the live loss / validation curve,
read the figures on the validation split, and find the new version beside the
shipped ones; check any of the task's models against the dataset's own masks,
labels or classes (an ``evaluate`` job: ``medlim bac|steatosis|ood|retrieval
evaluate --data DIR --json``). Issue 15: training is a ``train`` job (``medlim train <trainer>
--data DIR ...``) run by the app's worker, so it survives navigation and a
closed tab; the page finds it again. Issue 17: make one of the task's models
its default. The page draws what :mod:`medlim.core.model_catalogue`,
:mod:`medlim.ui.models` and :mod:`medlim.ui.jobs` compute; the command line
emits the same (``medlim data check``, ``medlim train``, ``medlim jobs``,
``medlim weights list|set-default``).
"""

from __future__ import annotations

import streamlit as st

from medlim.core.model_catalogue import TASKS, TaskInfo
from medlim.ui.shell import ensure_app_shell


def _training_section(task: TaskInfo) -> None:
    """The dataset (zip or server folder), its check, then training on it and checking a model against it."""
    from medlim.ui.models import (
        checked_dataset,
        dataset_picker,
        show_dataset_report,
        start_evaluation,
        start_training,
    )

    st.subheader("Train on your data")
    if not task.trains_from_page:
        st.info(f"Training {task.title} on your own data from this page is coming. Today: {task.today} "
                "You can already check a dataset for this task below.", icon=":material/schedule:")
    folder = dataset_picker()
    if folder is None:
        st.caption("Class folders (`<class>/*.png`), a `manifest.csv`, or a Decathlon `dataset.json`, as "
                   f"`medlim data check` reads them. From the command line: `{task.command}`.")
        return
    report = checked_dataset(folder, task)
    if report is None:
        return
    show_dataset_report(report)
    if task.trains_from_page:
        start_training(task, folder, report)
    start_evaluation(task, folder, report)


def main() -> None:
    ensure_app_shell()
    st.title("Models")
    st.caption("Train on your own images, compare versions and choose each task's default. "
               "Research use only, not for diagnosis.")
    from medlim.ui.models import show_catalogue, show_evaluation_job, show_training_job

    keys = [task.key for task in TASKS]
    titles = {task.key: task.title for task in TASKS}
    key = st.selectbox("Task", keys, index=keys.index("ood"), format_func=titles.__getitem__, key="models_task")
    task = next(t for t in TASKS if t.key == key)
    st.subheader(f"Models of this task ({task.registry_task})")
    show_catalogue(task)
    show_training_job(task)
    show_evaluation_job(task)
    _training_section(task)


main()
