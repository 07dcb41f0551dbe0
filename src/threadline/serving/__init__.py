"""The data plane: model loaders, batching, the Open Inference Protocol v2 app, prediction log."""
