"""Similar-image search page: OSCARS and PMS collections (thesis ch. 6).

Pick a collection (an index recorded in the results store) or build one from a
data folder or from generated phantoms (a job that survives a closed tab, with
its progress; issue 15); query with an
uploaded image or with "More like this" under any collection or result image;
see the top K with labels, similarity (cosine; DS for PMS) and anomaly score;
filter by label; read the evaluation tables of the shipped models.

The neighbours are a :class:`~medlim.curation.retrieval.service.RetrievalResult`
from :func:`~medlim.curation.retrieval.service.query_collection`, the function
``medlim retrieval query`` prints; the captions are its ``QueryHit.caption``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from medlim.core.paths import allowed_roots_text, confine_to_data_roots, validate_name
from medlim.curation.retrieval.service import collection_labels, item_caption
from medlim.curation.retrieval.weighting import DEFAULT_DS, DS_WEIGHTINGS
from medlim.settings import get_settings
from medlim.ui.errors import show_medlim_errors
from medlim.ui.retrieval import (
    items_cached,
    load_index_cached,
    load_model_cached,
    thumbnail_cached,
)
from medlim.ui.shell import ensure_app_shell

COLUMNS = 5
BROWSE_PER_PAGE = 10
JOB_KEY = "ret_job"


def _build_form(settings, entries) -> None:  # noqa: ANN001 - settings and registry entries
    """Build a collection: phantoms are written here, the encoding is a ``retrieval.build`` job (issue 15)."""
    from medlim.core.job_folders import job_folder
    from medlim.curation.retrieval.service import write_phantom_collection
    from medlim.ui.jobs import submit_page_job

    with st.expander("Build a collection", expanded=st.session_state.get(JOB_KEY) is not None):
        _build_job()
        labels = {e.label: e for e in entries}
        model = st.selectbox("Model", list(labels), key="retrieval_build_model")
        source = st.radio("Images", ("Generated phantoms", "Data folder"), horizontal=True, key="retrieval_build_source")
        columns = st.columns(3)
        name = columns[0].text_input("Collection name", value="phantoms", key="retrieval_build_name")
        if source == "Data folder":
            folder = columns[1].text_input(
                "Folder (manifest.csv or <class>/ folders)", key="retrieval_build_folder",
                help=f"A folder inside the data folders this app may read: {allowed_roots_text()} "
                     "(a relative path is taken under the first).")
        else:
            count = int(columns[1].number_input("Phantoms", min_value=10, max_value=2000, value=70,
                                                key="retrieval_build_n"))
            seed = int(columns[2].number_input("Seed", min_value=0, value=9100, key="retrieval_build_seed"))
        st.caption("Encoding runs as a job in the app's worker: it goes on when you leave this page or close the tab.")
        if not st.button("Build", key="retrieval_build", type="primary"):
            return
        entry = labels[model]
        argv = None
        with show_medlim_errors(subject="build"):
            name = validate_name(name, what="collection name")  # the index file is named by it
            data = confine_to_data_roots(folder, what="data folder") if source == "Data folder" else None
            collections = job_folder("collections", name)  # inside the data roots: the worker reads and writes it
            if data is None:
                bar = st.progress(0.0, text="Preparing…")
                kind = "chest" if entry.params.get("method") == "pms" else "radiograph"
                data = write_phantom_collection(kind, collections / "data", n=count, seed=seed,
                                                size=int(entry.params["input_size"]),
                                                label_set=entry.params.get("label_set"),
                                                progress=lambda d, t: bar.progress(d / t, text=f"Phantoms {d}/{t}"))
            argv = ["retrieval", "build", "--data", str(data), "--model", entry.name,
                    "--index", str(collections / f"{name}.npz"), "--name", name]
        if argv is not None and submit_page_job("retrieval.build", argv, state_key=JOB_KEY) is not None:
            st.rerun()


def _build_done(job: Any) -> None:
    from medlim.ui.jobs import result_output

    built = next((value for value in result_output(job) if isinstance(value, dict) and "name" in value), None)
    if built is None:
        return
    st.success(f"Built {built['name']}: {built.get('count', '?')} images.", icon=":material/check_circle:")
    if st.session_state.get("retrieval_job_opened") != job.id:  # open the new collection once
        st.session_state["retrieval_job_opened"] = job.id
        st.session_state["retrieval_collection"] = built["name"]
        st.session_state.pop("retrieval_collection_select", None)
        st.session_state.pop("retrieval_query_item", None)


def _build_job() -> None:
    """The build job this page follows (started here, or found again after a closed tab)."""
    from medlim.ui.jobs import follow_job, page_job

    job = None
    with show_medlim_errors(subject="build job"):
        job = page_job(JOB_KEY, "retrieval.build")
    if job is not None:
        follow_job(job, key=JOB_KEY, render_done=_build_done)


def _registry(settings):  # noqa: ANN001, ANN202
    from medlim.core.weights import Registry

    return Registry.load(str(settings.weights_dir))


def _grid(rows: list[tuple[int, str, str]], *, key: str) -> None:
    """Images with captions and a "More like this" button each: rows of (item_id, file, caption)."""
    for start in range(0, len(rows), COLUMNS):
        columns = st.columns(COLUMNS)
        for column, (item_id, file, caption) in zip(columns, rows[start : start + COLUMNS]):
            column.image(thumbnail_cached(file), caption=caption, width="stretch")
            column.button("More like this", key=f"{key}_{item_id}", on_click=_select_item, args=(item_id,))


def _select_item(item_id: int) -> None:
    """Button callback: query with this collection item (runs before the page script reruns)."""
    st.session_state["retrieval_query_item"] = item_id


def _evaluation() -> None:
    from medlim.curation.retrieval.service import evaluation_tables

    with st.expander("Evaluation of the shipped models (thesis Tables 6.1–6.3 style)", expanded=False):
        with show_medlim_errors(subject="weights registry") as outcome:
            tables = evaluation_tables(registry=_registry(get_settings()))
        if outcome.failed:
            return
        if not tables:
            st.caption("No retrieval model is registered.")
        for number, table in enumerate(tables):
            st.markdown(f"**{table.title}**")
            frame = pd.DataFrame(table.records()).set_index("method")
            frame.columns = [c.replace("_", " ") for c in frame.columns]
            st.dataframe(frame.style.format("{:.3f}"), key=f"retrieval_table_{number}")
            for note in table.notes:
                st.caption(note)


def _collection_choice(settings: Any) -> Any:
    """The chosen stored collection (``None`` when there is none yet, or the store failed)."""
    from medlim.core.store.retrieval import list_indexes
    from medlim.ui.stores import open_store_cached

    with show_medlim_errors(subject="results store") as outcome:
        indexes = {i.name: i for i in list_indexes(open_store_cached(settings.database_url))}
    if outcome.failed:
        return None
    if not indexes:
        st.info("No collection yet: build one above from a data folder or from generated phantoms.")
        _evaluation()
        return None
    names = list(indexes)
    current = st.session_state.get("retrieval_collection")
    chosen = st.selectbox("Collection", names, index=names.index(current) if current in names else 0,
                          key="retrieval_collection_select")
    if chosen != current:
        st.session_state["retrieval_collection"] = chosen
        st.session_state.pop("retrieval_query_item", None)
    return indexes[chosen]


def _opened(settings: Any, stored: Any) -> tuple[Any, Any, dict[int, Any]] | None:
    """``(index, model, items)`` of a stored collection, loaded once (``None`` when that failed)."""
    with show_medlim_errors(subject=stored.name) as outcome:
        path = Path(stored.path)
        index = load_index_cached(str(path), path.stat().st_mtime if path.exists() else 0.0)
        model = load_model_cached(index.metadata["model_name"], index.metadata["model_version"],
                                  str(settings.weights_dir))
        items = items_cached(settings.database_url, stored.name, stored.count)
    if outcome.failed:
        return None
    st.caption(f"{stored.count} images · model {stored.model} · "
               f"{'DS, lower = more similar' if model.kind == 'pms' else 'cosine similarity, higher = more similar'}")
    return index, model, items


def _controls(model: Any, items: dict[int, Any]) -> tuple[int, list[str], str | None]:
    """``(k, required labels, DS weighting)``; the weighting is ``None`` for models other than PMS."""
    controls = st.columns([1, 2, 1])
    k = int(controls[0].number_input("Top K", min_value=1, max_value=100, value=10, key="retrieval_k"))
    wanted = controls[1].multiselect("Only items with all of these labels", collection_labels(items),
                                     key="retrieval_labels")
    ds = None
    if model.kind == "pms":
        ds = controls[2].selectbox(
            "DS weighting", DS_WEIGHTINGS, index=DS_WEIGHTINGS.index(DEFAULT_DS), key="retrieval_ds",
            help="thesis: each class gap weighted by the query's probability (eq. 6.5); symmetric (default): by the "
                 "larger of the query's and the candidate's, so extra findings count (a deviation, chosen on "
                 "validation); unweighted: every class alike.")
    return k, wanted, ds


def _query(items: dict[int, Any]) -> tuple[Any, str, int] | None | bool:
    """``(image, name, excluded item id)`` of the query; ``None`` without one; ``False`` when reading failed."""
    from medlim.core.io import read_image

    uploaded = st.file_uploader("Query image", type=None, key="retrieval_upload",
                                on_change=lambda: st.session_state.pop("retrieval_query_item", None))
    if st.session_state.get("retrieval_query_item") in items:
        # a clicked image wins over an earlier upload; a new upload clears the click (on_change above)
        item = items[st.session_state["retrieval_query_item"]]
        with show_medlim_errors(subject=item.file) as outcome:
            image = read_image(Path(item.file)).pixels
        return False if outcome.failed else (image, Path(item.file).name, item.item_id)
    if uploaded is None:
        return None
    from medlim.ui.loaders import read_image_cached

    with show_medlim_errors(subject=uploaded.name) as outcome:
        image = read_image_cached(uploaded.getvalue(), Path(uploaded.name).name).pixels
    return False if outcome.failed else (image, uploaded.name, -1)


def _browse(items: dict[int, Any]) -> None:
    st.info("Upload a query image, or press “More like this” under any image of the collection.")
    st.subheader("Browse the collection")
    pages = max(1, -(-len(items) // BROWSE_PER_PAGE))
    page = int(st.number_input("Page", min_value=1, max_value=pages, value=1, key="retrieval_page"))
    shown = list(items.values())[(page - 1) * BROWSE_PER_PAGE : page * BROWSE_PER_PAGE]
    _grid([(i.item_id, i.file, item_caption(i.labels, i.anomaly_score)) for i in shown], key="retrieval_browse")


def _results(stored: Any, opened: tuple[Any, Any, dict[int, Any]], query: tuple[Any, str, int],
             k: int, wanted: list[str], ds: str | None) -> None:
    from medlim.curation.retrieval.service import query_collection
    from medlim.ui.stores import open_store_cached

    index, model, _ = opened
    image, name, exclude = query
    left, right = st.columns([1, 4])
    left.image(image, caption=f"Query: {name}", clamp=True, width="stretch")
    if exclude >= 0:
        right.button("Clear query", key="retrieval_clear",
                     on_click=lambda: st.session_state.pop("retrieval_query_item", None))
    with show_medlim_errors(subject="search") as outcome:
        result = query_collection(stored.path, [image], k=k, names=[name], require_labels=wanted, ds=ds,
                                  exclude_ids=[exclude], model=model, index=index,
                                  store=open_store_cached(get_settings().database_url))[0]
    if outcome.failed:
        return
    if not result.neighbours:
        right.info("No item of the collection carries all the chosen labels.")
        return
    right.subheader(f"Top {len(result)}")
    right.dataframe(pd.DataFrame(result.table()), hide_index=True, key="retrieval_hits", height=180)
    _grid([(h.item_id, h.file, h.caption) for h in result.neighbours], key="retrieval_hit")


def main() -> None:
    ensure_app_shell()
    st.title("Similar images")
    st.caption("Outlier-sensitive retrieval (OSCARS, thesis §6.1) and multi-label retrieval (PMS, §6.2). "
               "Research use only, not for diagnosis.")
    from medlim.curation.retrieval.service import list_retrieval_models

    settings = get_settings()
    with show_medlim_errors(subject="weights registry") as outcome:
        entries = list_retrieval_models(_registry(settings))
    if outcome.failed:
        return
    if not entries:
        st.info("No retrieval model is registered. Train one with `medlim train oscars` or `medlim train pms`.")
        return
    _build_form(settings, entries)
    stored = _collection_choice(settings)
    opened = None if stored is None else _opened(settings, stored)
    if opened is None:
        return
    k, wanted, ds = _controls(opened[1], opened[2])
    query = _query(opened[2])
    if query is False:
        return
    if query is None:
        _browse(opened[2])
    else:
        _results(stored, opened, query, k, wanted, ds)
    _evaluation()


main()
