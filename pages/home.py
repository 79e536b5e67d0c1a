"""Home page: what medlim does, for whom, the device and the models of both registries."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from medlim import RESEARCH_USE_NOTICE, __version__
from medlim.ui.errors import show_medlim_errors
from medlim.ui.loaders import model_versions
from medlim.ui.shell import ensure_app_shell

#: How the table names each registry.
_REGISTRY_WORDS = {"shipped": "shipped", "user": "yours"}


@st.cache_resource(max_entries=1, show_spinner=False)
def _device_text() -> str:
    from medlim.core.device import device_summary

    return device_summary()


ensure_app_shell()
st.title("medlim")
st.markdown(
    "A workbench for medical image analysis with little or no annotation. "
    "It implements the methods of one thesis as rooms for the people who use them:"
)
st.markdown(
    "- **Breast radiologists:** breast arterial calcification on mammograms, per view and per exam, "
    "and its change over the years.\n"
    "- **Pathologists:** clumped nuclei in microscopy and lipid droplets (steatosis) in liver H&E images.\n"
    "- **Dataset curators:** which external images are out of distribution, how far two datasets are "
    "apart, and images similar to a query.\n"
    "- **Everyone:** the *Image viewer* opens DICOM, PNG, TIFF and JPEG files with window/level, "
    "zoom, a histogram and the non-identifying metadata."
)
st.info(RESEARCH_USE_NOTICE, icon=":material/science:")

device_column, version_column = st.columns(2)
device_column.metric("Compute device", _device_text(), help="MEDLIM_DEVICE chooses auto, cpu or cuda.")
version_column.metric("medlim version", __version__)

st.subheader("Models")
with show_medlim_errors(subject="Weights registry") as outcome:
    models = model_versions()
if not outcome.failed:
    if models:
        st.table(
            pd.DataFrame(
                [
                    (m.name, m.version, m.task, _REGISTRY_WORDS.get(m.source, m.source),
                     "yes" if m.task_default else "", m.intended_use)
                    for m in models
                ],
                columns=["Model", "Version", "Task", "Registry", "Task default", "Intended use"],
            ),
            hide_index=True,
        )
        st.caption("*shipped*: comes with medlim (`MEDLIM_WEIGHTS_DIR`); *yours*: trained or imported by you "
                   "(`MEDLIM_MODELS_DIR`). A task's default is the model its pages open on.")
    else:
        st.caption("No models are registered yet (see `medlim weights list`).")
