"""Making the models, a tool on top of the stages: fine-tuning the extractive reader on SQuAD
(reader_training.py) and exporting the reader and the embedder to ONNX (reader_export.py,
embedder_export.py, over the shared steps of onnx_steps.py and outliers.py). The runtime
loads what these write through qa/reader/loading.py and qa/index/loading.py."""
