from collections import Counter

import numpy as np
import streamlit as st
from PIL import Image
from streamlit_drawable_canvas import st_canvas

import ui
from lenet import CLASSES, artifacts, charts
from lenet.data import DataError
from lenet.predict import (
    BlankImageError,
    ImageError,
    attributions,
    feature_maps,
    open_image,
    predict,
    to_model_input,
)

ui.setup_page()
st.title("Sandbox")
st.caption("Draw, sample or upload a garment and see what each saved model thinks it is.")


def enlarged(image28: np.ndarray, size: int = 196) -> Image.Image:
    return Image.fromarray(image28).resize((size, size), Image.Resampling.NEAREST)


# -- models -----------------------------------------------------------------------------------
saved = {}  # display name -> checkpoint; shipped names already say "(pretrained)"
for c in ui.workspace().list_checkpoints():
    label = c.name if c.source == "pretrained" else f"{c.name} (run)"
    saved[label if label not in saved else f"{label} · {c.path.name}"] = c
shipped = [label for label, c in saved.items() if c.source == "pretrained"]
models_column, own_column = st.columns([3, 1])
chosen = models_column.multiselect(
    "Models to compare", list(saved), default=shipped or list(saved)[:3], key="models", bind="query-params"
)
models = {}  # label -> (variant, model)
for label in chosen:
    model, metadata = ui.load_checkpoint(saved[label].path)
    models[label] = (metadata["variant"], model)
with own_column.expander("Your own .pth", icon=":material/upload_file:"):
    st.caption("A state_dict, e.g. saved by the original notebook. Read in memory, never stored.")
    uploaded_models = st.file_uploader("State dict files", type=["pth", "pt"], accept_multiple_files=True)
    for upload in uploaded_models or []:
        try:
            model, metadata = ui.load_uploaded_checkpoint(upload.name, upload.getvalue())
        except artifacts.CheckpointError as e:
            st.error(str(e))  # it names the file
        else:
            inferred = " (variant inferred from its layers)" if metadata.get("inferred") else ""
            st.success(f"{upload.name}: loaded as {metadata['variant']}{inferred}")
            models[f"{upload.name} (uploaded)"] = (metadata["variant"], model)
if not models:
    st.info("Choose at least one model (or train one first).")
    st.stop()

# -- input and answers: a fragment, so that a stroke reruns only this part ---------------------
source_column, brush_column = st.columns([3, 2])
source = source_column.radio(
    "Image",
    ["Draw", "Sample from the test set", "Upload"],
    horizontal=True,
    key="source",
    bind="query-params",
)
if source == "Draw":
    brush = brush_column.slider("Brush size", 5, 60, 28, help="Garments are filled shapes: paint them in.")


def read_input():
    """The chosen source's image -> (28x28 uint8 image, model input), or (None, None)."""
    try:
        if source == "Draw":
            # also keeps the canvas's floating toolbar clear of the source choice above it
            st.caption("Paint a filled garment, white on black; shoes face left.")
            st.session_state.setdefault("canvas_generation", 0)
            result = st_canvas(
                stroke_width=brush,
                stroke_color="#FFFFFF",
                background_color="#000000",
                height=280,
                width=280,
                return_image_data=True,
                key=f"canvas_{st.session_state['canvas_generation']}",
            )
            if st.button("Clear the canvas", key="clear_canvas"):
                st.session_state["canvas_generation"] += 1
                st.rerun(scope="fragment")
            if result is not None and result.image_data is not None:
                prepared = to_model_input(np.asarray(result.image_data, dtype=np.uint8))
                return prepared.image28, prepared.tensor
        elif source == "Sample from the test set":
            wanted = st.selectbox("Class", ["any class", *CLASSES], key="sample_class")
            test = ui.test_images()
            labels = test.split.labels.numpy()
            pool = (
                np.arange(len(labels))
                if wanted == "any class"
                else np.flatnonzero(labels == CLASSES.index(wanted))
            )
            key = f"sample_{wanted}"
            if st.button("Another image", key="another_sample") or key not in st.session_state:
                st.session_state[key] = int(np.random.default_rng().choice(pool))
            index = st.session_state[key]
            st.image(
                enlarged(np.asarray(test.images[index]), 280),
                caption=f"test image #{index}: a {CLASSES[labels[index]]}",
            )
            # exactly what the models were tested on
            return np.asarray(test.images[index]), test.split.images[index : index + 1]
        else:
            upload = st.file_uploader(
                "PNG, JPEG, GIF, WebP or BMP (up to 20 MB)",
                type=["png", "jpg", "jpeg", "gif", "webp", "bmp"],
                key="image_upload",
            )
            if upload is not None:
                picture = open_image(upload.getvalue())
                st.image(picture.convert("RGB"), caption=upload.name, width=280)
                prepared = to_model_input(picture)
                if prepared.inverted:
                    st.caption("Light background: inverted to light-on-dark, like FashionMNIST.")
                return prepared.image28, prepared.tensor
    except BlankImageError as e:
        st.info(str(e).capitalize())
    except ImageError as e:
        st.error(f"Cannot classify this file: {e}")
    except DataError as e:
        st.warning(f"Sampling needs the FashionMNIST test set. {e}")
    return None, None


@st.fragment
def input_and_answers() -> None:
    left, middle, right = st.columns([3, 2, 2])
    with left:
        image28, tensor = read_input()
    if tensor is None:
        middle.caption("The 28x28 image the models see will appear here.")
        return
    middle.image(enlarged(image28), caption="What the models see (28x28)")

    predictions = predict({label: model for label, (_, model) in models.items()}, tensor)
    with right:
        votes = Counter(p.top1 for p in predictions)
        if len(votes) > 1:
            st.warning(
                "The models disagree: "
                + ", ".join(f"**{c}** ({n} model{'s' * (n > 1)})" for c, n in votes.most_common())
            )
        for p in predictions:
            st.markdown(f"{p.model}: **{p.top1}** ({p.confidence:.0%})")
    st.markdown("**How sure each model is of each class**")
    ui.chart(charts.probability_grid({p.model: p.probabilities for p in predictions}), "probabilities")

    if st.toggle("Look inside a model: why this answer, and its feature maps", key="inside"):
        label = st.selectbox("Model", list(models), key="inside_model")
        _, model = models[label]
        why = attributions(model, tensor)
        left, right = st.columns([2, 3])
        ui.chart(charts.attribution_figure(image28, why.pixels, CLASSES[why.target]), "attributions", left)
        left.caption(
            "Integrated Gradients (Captum): each pixel's share of the class's score, compared with a "
            f"black image. The shares add up to the whole difference (to within {why.gap:.2f})."
        )
        ui.chart(charts.feature_map_grid(feature_maps(model, tensor)), "feature_maps", right)


input_and_answers()
