import keras_gated as kg


def test_every_public_name_is_exported():
    for name in kg.__all__:
        assert getattr(kg, name) is not None, name
    for name in ("PeepholeLSTM", "CoupledLSTM", "UntiedLSTM", "Highway"):
        assert name in kg.__all__
