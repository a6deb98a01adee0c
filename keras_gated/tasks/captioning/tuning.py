"""The captioning hypermodel: decoder cell and sizes as hyperparameters."""

from keras_gated.tuning import GatedHyperModel


class CaptionHyperModel(GatedHyperModel):
    """Builds an `ImageCaptioner` for a trial.

    On top of `GatedHyperModel`'s space (cell, units, num_layers, dropout,
    learning_rate, optimizer, clipnorm) it tunes `embedding_dim` and
    `attention_units`. `bidirectional` and `recurrent_dropout` are fixed
    (False, 0.0): a decoder that writes left to right cannot be
    bidirectional, and `dropout` acts on the embeddings and the deep output.

    When the data were encoded once by a frozen backbone (`data.inputs` are
    cached features), every trial's encoder gets that backbone's weights, so
    the saved model's encoder is the one the decoder was trained on.
    """

    def __init__(self, data, overrides=()):
        self.data = data
        super().__init__(overrides, name="captioning")

    def add_hparams(self, space):
        space.int("units", 32, 256, step=32, default=128)
        space.int("embedding_dim", 32, 256, step=32, default=64)
        space.int("attention_units", 32, 256, step=32, default=64)
        space.float("dropout", 0.0, 0.5, step=0.1, default=0.0)
        space.fixed("bidirectional", False)
        space.fixed("recurrent_dropout", 0.0)

    def build(self, hp):
        from keras_gated.tasks.captioning.model import ImageCaptioner
        from keras_gated.tasks.captioning.model import caption_loss

        config = self.data.config
        r = self.recurrent_hparams(hp)
        model = ImageCaptioner(
            self.data.vocabulary,
            image_size=config.image_size,
            encoder=config.encoder,
            encoder_weights=config.encoder_weights,
            fine_tune_encoder=config.fine_tune_encoder,
            encoder_filters=config.encoder_filters,
            cell=r["cell"],
            units=r["units"],
            num_layers=r["num_layers"],
            dropout=r["dropout"],
            embedding_dim=self.space.get(hp, "embedding_dim"),
            attention_units=self.space.get(hp, "attention_units"),
            max_length=config.max_length,
        )
        if self.data.encoder_weights is not None:
            model.encoder.set_weights(self.data.encoder_weights)
        # XLA compiles the decoder loop slower than small models run it.
        return self.compile(model, hp, caption_loss(), jit_compile=False)
