"""Predict: classify your own images with a model trained in a sweep, or see its ImageNet labels."""

import streamlit as st

from core import archives, config, workspaces
from core.errors import DatasetError, ImageProblem, WeightsUnavailable
from core.records import ModelResult
from ui import state
from ui.charts import probabilities_figure
from ui.guard import page_store, plain
from ui.mistakes import gradcam_image, gradcam_toggle
from ui.predict import comparison, exported_probabilities, pick_export
from ui.runs import pick_run

st.title("Predict")
store = page_store()


@st.cache_resource(show_spinner="Loading the trained model…", max_entries=4)
def classifier(run_id: int, model: str):
    from core.predict import load_classifier

    return load_classifier(run_id, model)


@st.cache_data(show_spinner="Running the full ImageNet model…", max_entries=64)
def top5(model_id: str, name: str, data: bytes):
    from core.predict import imagenet_top5

    return imagenet_top5(model_id, archives.read_image(name, data))


def trained_models(run_id: int) -> dict[str, ModelResult]:
    return {r.model: r for r in store.results(run_id) if isinstance(r, ModelResult)}


trained = [run for run in store.runs() if trained_models(run.id)]
if not trained:
    st.info("No trained models yet: run a sweep on the Train page first.", icon=":material/info:")
    st.stop()

left, right = st.columns(2)
run = pick_run(
    trained, state.run_id(), describe=lambda r: f"#{r.id} · {workspaces.display_name(r.dataset)}", where=left
)
run_id, results = run.id, trained_models(run.id)
ok, recommended = list(results), run.recommendation and run.recommendation.model
model = right.selectbox("Model", ok, index=ok.index(recommended) if recommended in ok else 0)
export = pick_export(run_id, model)
imagenet = st.toggle("Also show ImageNet labels (top 5 from the model's full 1000-class network)")
heat = gradcam_toggle(run_id, results[model], key="predict-cam")
files = st.file_uploader(
    "Images", accept_multiple_files=True, help="JPEG, PNG, BMP, GIF, WebP…", max_upload_size=config.upload_megabytes()
)
photo = st.camera_input("Or take a photo", help="Allow the camera in your browser.") if st.toggle("Camera") else None
files = [*(files or []), *([photo] if photo else [])]

if not files:
    st.caption("Upload one or more images, or take a photo, to classify them.")
    st.stop()

try:  # what the server accepts, whatever the browser was told
    archives.check_upload_bytes("The images", sum(file.size for file in files))
except DatasetError as error:
    st.error(plain(error), icon=":material/error:")
    st.stop()
images = []
for file in files:
    try:
        images.append((file, archives.read_image(file.name, file.getvalue())))
    except (ImageProblem, ValueError) as problem:
        st.error(
            f"**{plain(file.name)}**: {plain(getattr(problem, 'reason', problem))}", icon=":material/broken_image:"
        )
if not images:
    st.stop()

try:
    model_obj = classifier(run_id, model)
    probabilities = model_obj.predict([image for _, image in images])
    exported = export and exported_probabilities(export, [image for _, image in images], results[model].input_size)
except (ValueError, OSError, WeightsUnavailable) as error:
    st.error(f"Cannot load {model} from run #{run_id}: {error}", icon=":material/error:")
    st.stop()

for index, ((file, image), row) in enumerate(zip(images, probabilities, strict=True)):
    best = int(row.argmax())
    with st.container(border=True):
        cols = st.columns([1, 3])
        cols[0].image(image, caption=file.name)
        if heat:
            gradcam_image(cols[0], run_id, results[model], image, best)
        cols[1].markdown(f"**{plain(model_obj.classes[best])}** ({row[best]:.1%})")
        cols[1].plotly_chart(probabilities_figure(model_obj.classes, row.tolist()), key=f"p-{file.file_id}")
        if export:
            comparison(cols[1], model_obj.classes, row, exported[index], export[0].label)
        if imagenet:
            try:
                labels = top5(results[model].network, file.name, file.getvalue())
                cols[1].dataframe(
                    [{"ImageNet label": n, "probability": p} for n, p in labels],
                    hide_index=True,
                    column_config={"probability": st.column_config.ProgressColumn(format="percent")},
                )
            except WeightsUnavailable as error:
                cols[1].warning(f"No ImageNet labels for {model}: its full-network weights are not available. {error}")

st.caption(
    f"{len(images)} image(s) classified with {model} from run #{run_id}: classes {plain(', '.join(model_obj.classes))}."
)
