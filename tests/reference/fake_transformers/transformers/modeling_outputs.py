"""Fake transformers.modeling_outputs (see __init__.py)."""


class BaseModelOutput(dict):
    def __init__(self, last_hidden_state=None):
        super().__init__(last_hidden_state=last_hidden_state)
        self.last_hidden_state = last_hidden_state
