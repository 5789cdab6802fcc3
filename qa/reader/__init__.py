"""Stage 4, read: a question and the `Hit`s' passages in -> scored `Span`s out (extractive.py);
training.py fine-tunes the reader that ships in qa/reader_model/."""
