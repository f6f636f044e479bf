"""Models assembled offline from parts, for the paths no reachable checkpoint can exercise.

No vision-language weights are reachable here or in CI, yet the multimodal path (image
loading, processor, engine, scorer, tracking) must run end to end.  ``idefics3_random_vision``
builds one: SmolLM2-135M-Instruct's text weights and tokenizer (the embedded GGUF, converted)
behind a small, randomly initialised SigLIP vision tower and pixel-shuffle connector, saved in
Idefics3's architecture -- SmolVLM's, SmolLM2's own VLM family -- which both vLLM (CPU build
included: its Idefics3 model needs no torchvision) and transformers load.  Its answers depend on
the images only through random weights: the registry entry says so (``random_weights``) and
every run made with it is tagged, so no score of it is read as a model's.

A builder is a function ``(text_model_dir, out_dir, seed) -> None`` registered in ``BUILDERS``
under the name a model's ``offline.build`` gives; ``BUILDER_REVISION`` enters the weights'
identity, so changing what a builder makes changes every cell's config hash that used it.  A
builder may carry two attributes: ``text_model = False`` (it uses no text model, so none is
converted for it) and ``inputs_digest()`` (what else it reads, e.g. the test encoder's corpus of
slices, which then enters the weights' identity too).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

BUILDER_REVISION = 1

# Idefics3's image tokens: the processor expands each "<image>" of the chat text into
# <fake_token_around_image><global-img><image>*N<fake_token_around_image> (row/col tags when it
# splits images, which the test VLM does not, but its processor looks them up).
IDEFICS3_TOKENS = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"] + [
    f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]

# SmolLM2's ChatML, with image parts of a message's content rendered as "<image>".
CHATML_WITH_IMAGES = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}{{ '<image>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    "{% endif %}{{ '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

# Small on purpose: 128 px images in 16 px patches, pixel-shuffled by 2 -> 16 image tokens.
IMAGE_SIZE, PATCH_SIZE, SCALE_FACTOR = 128, 16, 2


def idefics3_random_vision(text_dir: Path, out: Path, seed: int = 0) -> None:
    """SmolLM2 (``text_dir``) + a random 2-layer SigLIP tower, saved as an Idefics3 checkpoint."""
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3Processor,
        Idefics3VisionConfig,
    )
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(str(text_dir))
    tok.add_special_tokens({"additional_special_tokens": IDEFICS3_TOKENS})
    lm = AutoModelForCausalLM.from_pretrained(str(text_dir), dtype=torch.float32)
    lm.resize_token_embeddings(len(tok), mean_resizing=False)
    vision = Idefics3VisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                  num_attention_heads=2, image_size=IMAGE_SIZE, patch_size=PATCH_SIZE)
    text = lm.config
    config = Idefics3Config(vision_config=vision.to_dict(), text_config=text.to_dict(), scale_factor=SCALE_FACTOR,
                            image_token_id=tok.convert_tokens_to_ids("<image>"), tie_word_embeddings=True,
                            pad_token_id=text.pad_token_id)
    model = Idefics3ForConditionalGeneration(config)
    state = {k.removeprefix("model."): v for k, v in lm.state_dict().items() if k.startswith("model.")}
    model.model.text_model.load_state_dict(state)  # strict: every text weight is SmolLM2's
    model.lm_head.weight = model.model.text_model.embed_tokens.weight
    images = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": IMAGE_SIZE},
                                       max_image_size={"longest_edge": IMAGE_SIZE})
    tokens_per_image = (IMAGE_SIZE // PATCH_SIZE) ** 2 // SCALE_FACTOR ** 2
    processor = Idefics3Processor(image_processor=images, tokenizer=tok, image_seq_len=tokens_per_image,
                                  chat_template=CHATML_WITH_IMAGES)
    model.save_pretrained(out)
    processor.save_pretrained(out)


from specbench.builders_encoder import bert_random_wordpiece  # noqa: E402 - the test encoder (builders_encoder)

BUILDERS: dict[str, Callable[[Path, Path, int], None]] = {"idefics3_random_vision": idefics3_random_vision,
                                                         "bert_random_wordpiece": bert_random_wordpiece}
