"""Predict: classify your own images with a model trained in a sweep, or see its ImageNet labels."""

from pathlib import Path

import streamlit as st

from core import archives
from core.errors import ImageProblem, WeightsUnavailable
from core.records import ModelResult
from core.store import Store
from ui import state
from ui.charts import probabilities_figure
from ui.runs import pick_run

st.title("Predict")
store = Store()


@st.cache_resource(show_spinner="Loading the trained model…", max_entries=4)
def classifier(run_id: int, model: str):
    from core.predict import load_classifier

    return load_classifier(run_id, model)


@st.cache_data(show_spinner="Running the full ImageNet model…", max_entries=64)
def top5(model_id: str, name: str, data: bytes):
    from core.predict import imagenet_top5

    return imagenet_top5(model_id, archives.read_image(name, data))


def trained_models(run_id: int) -> list[str]:
    return [r.model for r in store.results(run_id) if isinstance(r, ModelResult)]


trained = [run for run in store.runs() if trained_models(run.id)]
if not trained:
    st.info("No trained models yet: run a sweep on the Train page first.", icon=":material/info:")
    st.stop()

left, right = st.columns(2)
run = pick_run(trained, state.run_id(), describe=lambda r: f"#{r.id} · {Path(r.dataset).name}", where=left)
run_id, ok = run.id, trained_models(run.id)
recommended = run.recommendation and run.recommendation.model
model = right.selectbox("Model", ok, index=ok.index(recommended) if recommended in ok else 0)
imagenet = st.toggle("Also show ImageNet labels (top 5 from the model's full 1000-class network)")
files = st.file_uploader("Images", accept_multiple_files=True, help="JPEG, PNG, BMP, GIF, WebP…")

if not files:
    st.caption("Upload one or more images to classify them.")
    st.stop()

images = []
for file in files:
    try:
        images.append((file, archives.read_image(file.name, file.getvalue())))
    except (ImageProblem, ValueError) as problem:
        st.error(f"**{file.name}**: {getattr(problem, 'reason', problem)}", icon=":material/broken_image:")
if not images:
    st.stop()

try:
    model_obj = classifier(run_id, model)
    probabilities = model_obj.predict([image for _, image in images])
except (ValueError, OSError, WeightsUnavailable) as error:
    st.error(f"Cannot load {model} from run #{run_id}: {error}", icon=":material/error:")
    st.stop()

for (file, image), row in zip(images, probabilities, strict=True):
    best = int(row.argmax())
    with st.container(border=True):
        cols = st.columns([1, 3])
        cols[0].image(image, caption=file.name)
        cols[1].markdown(f"**{model_obj.classes[best]}** ({row[best]:.1%})")
        cols[1].plotly_chart(probabilities_figure(model_obj.classes, row.tolist()), key=f"p-{file.file_id}")
        if imagenet:
            try:
                labels = top5(model, file.name, file.getvalue())
                cols[1].dataframe(
                    [{"ImageNet label": n, "probability": p} for n, p in labels],
                    hide_index=True,
                    column_config={"probability": st.column_config.ProgressColumn(format="percent")},
                )
            except WeightsUnavailable as error:
                cols[1].warning(f"No ImageNet labels for {model}: its full-network weights are not available. {error}")

st.caption(
    f"{len(images)} image(s) classified with {model} from run #{run_id}: classes {', '.join(model_obj.classes)}."
)
