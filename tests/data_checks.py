"""What mle6 checks in the data: the one table behind docs/data-checks.md and tests/test_bad_data.py.

One row per damaged input. `group` and `case` name the test that builds the damage and checks
what happens: the key `case` of the dict `group` in tests/test_bad_data.py (its parametrized
cases come from here), or, for the few one-off rows, the test function `group`. `docs/gen_pages.py`
renders the rows as the page's table; a test fails when the committed page and this table differ.
In the messages `D/` is the `--data-dir` folder, `raw/` is `<--data-dir>/MNIST/raw/`, `DIR` the
`--resume` folder, `F` the file named and `…` text that varies.
"""

from __future__ import annotations

from typing import NamedTuple


class Row(NamedTuple):
    group: str
    case: str
    input: str  # the input and the commands that read it; later rows of a section shorten it
    damage: str
    outcome: str  # "refused" (Error:, exit 1) or "accepted" (a Note:), possibly "... as in <command>"
    message: str  # what the user reads, after `Error: ` or as the whole Note line
    remark: str = ""  # said after the message, in words


def cases(group: str) -> list[str]:
    """The test cases of `group`, in the table's order."""
    return [row.case for row in ROWS if row.group == group]


# fmt: off
ROWS = [
    Row('SIGNS_REFUSED', 'truncated npy (data cut)', 'SIGNS npy (`train-cnn`, `sweep-lr --data-dir D`)', 'truncated array data', 'refused', 'cannot load D/X_train.npy: truncated (its header promises … bytes, the file has …)'),
    Row('SIGNS_REFUSED', 'truncated npy (header cut)', 'SIGNS npy', 'truncated header', 'refused', 'cannot load D/Y_val.npy: truncated (the file ends inside its header)'),
    Row('SIGNS_REFUSED', 'empty npy file', 'SIGNS npy', 'empty file', 'refused', 'cannot load D/X_test.npy: the file is empty'),
    Row('SIGNS_REFUSED', 'not an npy file', 'SIGNS npy', 'not an npy file', 'refused', "cannot load D/X_val.npy: not an .npy file (it starts with b'this i')"),
    Row('SIGNS_REFUSED', 'an npz archive under an npy name', 'SIGNS npy', 'an npz archive under the npy name', 'refused', 'cannot load D/X_train.npy: it is an .npz archive, not one .npy array'),
    Row('SIGNS_REFUSED', 'pickled object array', 'SIGNS npy', 'a pickled object array', 'refused', 'cannot load D/Y_train.npy: it holds pickled Python objects; refused (npy files are read as data only)'),
    Row('SIGNS_REFUSED', 'missing file', 'SIGNS npy', 'a file missing', 'refused', 'D is missing Y_test.npy (make them with …)'),
    Row('SIGNS_REFUSED', 'images of strings', 'SIGNS npy', 'images of strings', 'refused', 'D/X_train.npy has dtype <U3; pixels must be integers 0..255 or floats in [0, 1]'),
    Row('SIGNS_REFUSED', 'complex images', 'SIGNS npy', 'complex images', 'refused', 'D/X_train.npy has dtype complex64; pixels must be …'),
    Row('SIGNS_REFUSED', 'boolean labels', 'SIGNS npy', 'boolean labels', 'refused', 'D/Y_val.npy has dtype bool; labels must be integers 0..5'),
    Row('SIGNS_REFUSED', 'grey images N×64×64 (rank 3)', 'SIGNS npy', 'grey images N×64×64 (rank 3, MNIST-like)', 'refused', 'D/X_train.npy must hold N×64×64×3 RGB images, got shape (12, 64, 64)'),
    Row('SIGNS_REFUSED', 'channels first N×3×64×64', 'SIGNS npy', 'channels first N×3×64×64', 'refused', 'D/X_test.npy must hold N×64×64×3 RGB images, got shape (6, 3, 64, 64)'),
    Row('SIGNS_REFUSED', 'one-hot labels N×6 (rank 2)', 'SIGNS npy', 'one-hot labels N×6 (rank 2)', 'refused', 'D/Y_train.npy must be a 1-D array of labels, got shape (12, 6) (one-hot rows? store each label as its class number 0..5)'),
    Row('SIGNS_REFUSED', 'NaN pixels', 'SIGNS npy', 'NaN pixels', 'refused', 'D/X_val.npy contains NaN (image 4)'),
    Row('SIGNS_REFUSED', 'infinite pixels', 'SIGNS npy', 'infinite pixels', 'refused', 'D/X_train.npy contains inf (image 3)'),
    Row('SIGNS_REFUSED', 'NaN label', 'SIGNS npy', 'a NaN label', 'refused', 'D/Y_test.npy contains NaN'),
    Row('SIGNS_REFUSED', 'infinite label', 'SIGNS npy', 'an infinite label', 'refused', 'D/Y_train.npy contains inf (sample 7)'),
    Row('SIGNS_REFUSED', 'fractional float pixels above 1', 'SIGNS npy', 'float pixels with fractions above 1 (ambiguous)', 'refused', 'D/X_train.npy has fractional pixel values above 1 (up to …; image …); expected whole numbers 0..255 or floats in [0, 1]'),
    Row('SIGNS_REFUSED', 'pixels above 255', 'SIGNS npy', 'pixels above 255', 'refused', 'D/X_val.npy has pixel values from 100 to 355; expected 0..255'),
    Row('SIGNS_REFUSED', 'standardised pixels (negative)', 'SIGNS npy', 'standardised (negative) pixels', 'refused', 'D/X_train.npy has pixel values from -… to …; expected 0..255 (or 0..1)'),
    Row('SIGNS_REFUSED', '[0, 1] images cast to integers', 'SIGNS npy', '[0, 1] images cast to integers', 'refused', 'D/X_train.npy has integer pixel values only 0..1; expected 0..255 (…)'),
    Row('SIGNS_REFUSED', 'RGBA with transparent pixels', 'SIGNS npy', 'RGBA N×64×64×4 with transparent pixels', 'refused', 'D/X_train.npy holds RGBA images (shape (12, 64, 64, 4)) with transparent pixels (sample 0); save them as N×64×64×3 RGB'),
    Row('SIGNS_REFUSED', 'label above 5', 'SIGNS npy', 'a label above 5', 'refused', 'D/Y_val.npy has 1 label(s) outside 0..5, e.g. 6 at sample 1'),
    Row('SIGNS_REFUSED', 'negative label', 'SIGNS npy', 'a negative label', 'refused', 'D/Y_test.npy has 1 label(s) outside 0..5, e.g. -1 at sample 0'),
    Row('SIGNS_REFUSED', 'fractional label', 'SIGNS npy', 'a fractional label', 'refused', 'D/Y_train.npy holds a non-integer label 2.5 (sample 4); labels must be 0..5'),
    Row('SIGNS_REFUSED', 'empty split', 'SIGNS npy', 'an empty split', 'refused', 'D/X_val.npy holds no images'),
    Row('SIGNS_REFUSED', 'fewer labels than images', 'SIGNS npy', 'fewer labels than images', 'refused', 'D/X_train.npy has 12 images but D/Y_train.npy has 11 labels'),
    Row('SIGNS_REFUSED', 'training split missing a class', 'SIGNS npy', 'training split missing a class', 'refused', 'D/Y_train.npy has no image of class 5; the training split must hold every class 0..5'),
    Row('test_sweep_lr_refuses_the_same_way', 'truncated file', 'SIGNS npy (`sweep-lr`)', 'truncated file', 'refused as in train-cnn', 'cannot load D/Y_test.npy: truncated (…)'),
    Row('SIGNS_ACCEPTED', 'float pixels in [0, 1]', 'SIGNS npy', 'float pixels in [0, 1]', 'accepted', 'Note: D/X_train.npy holds float32 pixels in [0, 1]; used as they are (not divided by 255).'),
    Row('SIGNS_ACCEPTED', 'float pixels, whole numbers 0..255', 'SIGNS npy', 'float pixels, whole numbers 0..255', 'accepted', 'Note: D/X_val.npy holds float64 pixels with whole values 0..255; divided by 255 as uint8 pixels are.'),
    Row('SIGNS_ACCEPTED', 'RGBA, opaque everywhere', 'SIGNS npy', 'RGBA, opaque everywhere', 'accepted', 'Note: D/X_test.npy holds RGBA images, opaque everywhere; the alpha channel was dropped.'),
    Row('SIGNS_ACCEPTED', 'float labels, whole numbers', 'SIGNS npy', 'float labels that are whole numbers', 'accepted', 'Note: D/Y_train.npy holds float32 labels; read as the whole numbers 0..5 they are.'),
    Row('SIGNS_ACCEPTED', 'val split missing a class', 'SIGNS npy', 'val split missing a class', 'accepted', 'Note: D/Y_val.npy has no image of class 0; its accuracy covers the other classes only.'),
    Row('SIGNS_ACCEPTED', 'test split missing a class', 'SIGNS npy', 'test split missing a class', 'accepted', 'Note: D/Y_test.npy has no image of class 3; its accuracy covers the other classes only.'),
    Row('H5_REFUSED', 'truncated h5', '`prepare-signs --train-h5/--test-h5`', 'truncated h5', 'refused', 'cannot read F as HDF5: truncated file: eof = …'),
    Row('H5_REFUSED', 'not an HDF5 file', 'h5', 'not an HDF5 file', 'refused', 'cannot read F as HDF5: not an HDF5 file (file signature not found)'),
    Row('H5_REFUSED', "h5 without the split's datasets", 'h5', "without the split's datasets", 'refused', "F has no dataset 'train_set_x' (it holds list_classes, test_set_x, test_set_y)"),
    Row('H5_REFUSED', 'h5 grey images (rank 3)', 'h5', 'grey images (rank 3)', 'refused', 'F must hold N×64×64×3 RGB images, got shape (18, 64, 64)'),
    Row('H5_REFUSED', 'h5 RGBA with transparent pixels', 'h5', 'RGBA with transparent pixels', 'refused', 'F holds RGBA images (shape (6, 64, 64, 4)) with transparent pixels (sample 0); …'),
    Row('H5_REFUSED', 'h5 NaN pixels', 'h5', 'NaN pixels', 'refused', 'F contains NaN (image 2)'),
    Row('H5_REFUSED', 'h5 fractional float pixels above 1', 'h5', 'float pixels with fractions above 1', 'refused', 'F has fractional pixel values above 1 (up to …; image …); expected whole numbers 0..255 or floats in [0, 1]'),
    Row('H5_REFUSED', 'h5 label above 5', 'h5', 'a label above 5', 'refused', 'F has 1 label(s) outside 0..5, e.g. 9 at sample 3'),
    Row('H5_REFUSED', 'h5 fractional label', 'h5', 'a fractional label', 'refused', 'F holds a non-integer label 2.5 (sample 0); labels must be 0..5'),
    Row('H5_REFUSED', 'h5 empty', 'h5', 'empty', 'refused', 'F holds no images'),
    Row('H5_REFUSED', 'h5 fewer labels than images', 'h5', 'fewer labels than images', 'refused', 'F holds 18 images but 17 labels'),
    Row('H5_REFUSED', 'h5 training file missing a class', 'h5', 'training file missing a class', 'refused', 'F has no image of class 5; the training split must hold every class 0..5'),
    Row('H5_ACCEPTED', 'h5 float pixels in [0, 1]', 'h5', 'float pixels in [0, 1]', 'accepted', 'Note: F holds float64 pixels in [0, 1]; written as uint8 0..255 (multiplied by 255, rounded).'),
    Row('H5_ACCEPTED', 'h5 test file missing a class', 'h5', 'test file missing a class', 'accepted', 'Note: F has no image of class 5; its accuracy covers the other classes only.'),
    Row('FOLDER_REFUSED', 'truncated jpg', '`prepare-signs --train-dir/--test-dir`', 'truncated jpg', 'refused', 'cannot read image F: image file is truncated (… bytes not processed)'),
    Row('FOLDER_REFUSED', 'not an image', 'image folder', 'a file that is not an image', 'refused', 'cannot read image F: not a JPEG or PNG image'),
    Row('FOLDER_REFUSED', 'label in the name above 5', 'image folder', 'label in the name above 5 (`7_x.png`)', 'refused', 'F is labelled 7 by its name; labels are 0..5'),
    Row('FOLDER_REFUSED', 'no label in the name', 'image folder', 'no label in the name', 'refused', 'F is not named <label>_*.jpg, so its label is unknown'),
    Row('FOLDER_REFUSED', 'wrong image size', 'image folder', 'wrong image size', 'refused', 'F is 32x48 pixels; expected 64x64 (resize it first)'),
    Row('FOLDER_REFUSED', 'png with transparent pixels', 'image folder', 'png with transparent pixels', 'refused', 'F has transparent pixels; flatten it onto a background (RGB) first'),
    Row('FOLDER_REFUSED', '16-bit png', 'image folder', '16-bit png', 'refused', 'F has 16-bit or float pixels (mode I;16); save it with 8 bits per channel'),
    Row('FOLDER_REFUSED', 'empty folder', 'image folder', 'empty folder', 'refused', 'F holds no <label>_*.jpg images'),
    Row('FOLDER_REFUSED', 'training folder missing a class', 'image folder', 'training folder missing a class', 'refused', 'F has no image of class 2; the training split must hold every class 0..5'),
    Row('FOLDER_ACCEPTED', 'grey png', 'image folder', 'a grey png', 'accepted', 'Note: F holds 1 grey image(s); each was copied into the R, G and B channels.'),
    Row('FOLDER_ACCEPTED', 'png with an opaque alpha channel', 'image folder', 'a png with an opaque alpha channel', 'accepted', 'Note: F holds 1 image(s) with an opaque alpha channel; it was dropped.'),
    Row('FOLDER_ACCEPTED', 'test folder missing a class', 'image folder', 'test folder missing a class', 'accepted', 'Note: F has no image of class 4; its accuracy covers the other classes only.'),
    Row('MNIST_REFUSED', 'truncated IDX', 'MNIST IDX (`train-ae`, `pca-ae`, `latent-plot --data-dir`)', 'truncated file', 'refused', 'raw/train-images-idx3-ubyte is truncated: its header announces 40×28×28 values (31360 bytes), it holds …'),
    Row('MNIST_REFUSED', 'IDX with trailing bytes', 'MNIST IDX', 'bytes after the data', 'refused', 'raw/train-labels-idx1-ubyte has 2 bytes after the 40 values its header announces'),
    Row('MNIST_REFUSED', 'not an IDX file', 'MNIST IDX', 'not an IDX file (an HTML page, say)', 'refused', "raw/t10k-images-idx3-ubyte is not an IDX file (it starts with b'<htm', not 00 00 08 ..)"),
    Row('MNIST_REFUSED', 'empty IDX file', 'MNIST IDX', 'empty file', 'refused', 'raw/t10k-labels-idx1-ubyte is empty'),
    Row('MNIST_REFUSED', '.gz that is not gzip', 'MNIST `.gz`', 'not gzip', 'refused', 'raw/train-images-idx3-ubyte.gz is not a readable gzip file: Not a gzipped file (…)'),
    Row('MNIST_REFUSED', 'truncated .gz', 'MNIST `.gz`', 'truncated', 'refused', 'raw/train-labels-idx1-ubyte.gz is not a readable gzip file: Compressed file ended before the end-of-stream marker was reached'),
    Row('MNIST_REFUSED', '.gz holding something else', 'MNIST `.gz`', 'gzip of something else', 'refused', "raw/t10k-images-idx3-ubyte.gz is not an IDX file (it starts with b'PK\\x03\\x04', …)"),
    Row('MNIST_REFUSED', 'images with 3 channels (rank 4)', 'MNIST IDX', 'images with 3 channels (rank 4)', 'refused', 'raw/train-images-idx3-ubyte holds an array of shape (40, 28, 28, 3); MNIST images are N×28×28 (one grey channel)'),
    Row('MNIST_REFUSED', 'images of the wrong size', 'MNIST IDX', 'images of the wrong size', 'refused', 'raw/t10k-images-idx3-ubyte holds images of shape (32, 32), expected 28x28'),
    Row('MNIST_REFUSED', 'NaN pixels (float IDX)', 'MNIST IDX', 'NaN pixels (float IDX)', 'refused', 'raw/train-images-idx3-ubyte contains NaN (image 6)'),
    Row('MNIST_REFUSED', 'infinite pixels (float IDX)', 'MNIST IDX', 'infinite pixels (float IDX)', 'refused', 'raw/t10k-images-idx3-ubyte contains inf (image 0)'),
    Row('MNIST_REFUSED', 'fractional float pixels above 1', 'MNIST IDX', 'float pixels with fractions above 1', 'refused', 'raw/train-images-idx3-ubyte has fractional pixel values above 1 (up to …; image …); expected whole numbers 0..255 or floats in [0, 1]'),
    Row('MNIST_REFUSED', '[0, 1] images saved as bytes', 'MNIST IDX', '[0, 1] images saved as bytes', 'refused', 'raw/train-images-idx3-ubyte has integer pixel values only 0..1; expected 0..255 (…)'),
    Row('MNIST_REFUSED', 'label above 9', 'MNIST IDX', 'a label above 9', 'refused', 'MNIST labels in raw/train-labels-idx1-ubyte must be 0..9, found 12..12'),
    Row('MNIST_REFUSED', 'fractional label (float IDX)', 'MNIST IDX', 'a fractional label (float IDX)', 'refused', 'raw/t10k-labels-idx1-ubyte holds a non-integer label 0.5 (label 0); labels are digits 0..9'),
    Row('MNIST_REFUSED', 'labels of rank 2', 'MNIST IDX', 'labels of rank 2', 'refused', 'raw/train-labels-idx1-ubyte holds an array of shape (40, 1); MNIST labels are one digit per image'),
    Row('MNIST_REFUSED', 'fewer labels than images', 'MNIST IDX', 'fewer labels than images', 'refused', 'raw/t10k-images-idx3-ubyte holds 20 images but its labels file 19 labels'),
    Row('MNIST_REFUSED', 'empty split', 'MNIST IDX', 'an empty split', 'refused', 'raw/t10k-images-idx3-ubyte holds no images'),
    Row('test_pca_ae_refuses_the_same_way', 'truncated .gz', 'MNIST `.gz` (`pca-ae`)', 'truncated', 'refused as in train-ae', 'raw/t10k-images-idx3-ubyte.gz is not a readable gzip file: …'),
    Row('test_latent_plot_refuses_bad_mnist', 'header cut short', 'MNIST IDX (`latent-plot --data-dir`)', 'header cut short', 'refused', 'raw/t10k-labels-idx1-ubyte is truncated: its header is cut short', 'no PNG written'),
    Row('MNIST_ACCEPTED', 'float pixels in [0, 1] (float IDX)', 'MNIST IDX', 'float pixels in [0, 1]', 'accepted', "Note: raw/train-images-idx3-ubyte holds float32 pixels in [0, 1]; stored as bytes 0..255 (×255, rounded) like MNIST's."),
    Row('MNIST_ACCEPTED', 'int32 pixels 0..255', 'MNIST IDX', 'int32 pixels 0..255', 'accepted', 'Note: raw/t10k-images-idx3-ubyte holds int32 pixels; read as the bytes 0..255 they are.'),
    Row('MNIST_ACCEPTED', 'float labels, whole numbers', 'MNIST IDX', 'float labels that are whole numbers', 'accepted', 'Note: raw/train-labels-idx1-ubyte holds float32 labels; read as the whole digits 0..9 they are.'),
    Row('MNIST_ACCEPTED', 'a digit missing from a split', 'MNIST IDX', 'a digit missing from a split', 'accepted', 'Note: raw/train-labels-idx1-ubyte has no image of digit 7; the autoencoders do not use labels, and latent-plot shows only the digits present.', '`latent-plot` prints it too'),
    Row('CHECKPOINT_REFUSED', 'not a torch file', 'checkpoint (`latent-plot --checkpoint F`)', 'not a torch file', 'refused', "checkpoint F cannot be read: not a torch file (it starts with b'garb')"),
    Row('CHECKPOINT_REFUSED', 'empty file', 'checkpoint', 'empty file', 'refused', 'checkpoint F cannot be read: the file is empty'),
    Row('CHECKPOINT_REFUSED', 'truncated torch file', 'checkpoint', 'truncated', 'refused', 'checkpoint F cannot be read: truncated (a torch zip archive without its end)'),
    Row('CHECKPOINT_REFUSED', 'a pickled module (code, not data)', 'checkpoint', 'a pickled module (code, not data)', 'refused', 'checkpoint F holds more than tensors and plain values; refused (Unsupported global: GLOBAL torch.nn.modules.linear.Linear)'),
    Row('CHECKPOINT_REFUSED', 'a plain pickle', 'checkpoint', 'a plain Python pickle', 'refused', 'checkpoint F cannot be read: not a torch file (a plain Python pickle)'),
    Row('CHECKPOINT_REFUSED', 'a tensor, not a checkpoint', 'checkpoint', 'a tensor, not a checkpoint', 'refused', 'F is not a train-ae checkpoint'),
    Row('CHECKPOINT_REFUSED', "a classifier's model.pt", 'checkpoint', "a classifier's model.pt", 'refused', 'F is not a train-ae checkpoint'),
    Row('CHECKPOINT_REFUSED', 'weights not a mapping', 'checkpoint', 'weights that are not a mapping', 'refused', 'F is not a train-ae checkpoint'),
    Row('CHECKPOINT_REFUSED', 'latent_dim not a number', 'checkpoint', 'latent_dim not a number', 'refused', "F is not a train-ae checkpoint (its latent_dim is 'three', not a whole number >= 1)"),
    Row('CHECKPOINT_REFUSED', 'weights missing', 'checkpoint', 'weights missing', 'refused', "F does not fit the exercise's autoencoder: Missing key(s) in state_dict: …"),
    Row('CHECKPOINT_REFUSED', 'NaN weights', 'checkpoint', 'NaN weights', 'refused', 'F holds NaN or infinite weights (encoder.0.weight); the model diverged or the file is damaged'),
    Row('CLASSIFIER_REFUSED', 'a damaged zip archive', 'classifier (`load_classifier`)', 'a damaged zip archive', 'refused', 'checkpoint F cannot be read: truncated (…)'),
    Row('CLASSIFIER_REFUSED', 'an autoencoder checkpoint', 'classifier', 'an autoencoder checkpoint', 'refused', 'F is not a classifier saved by mle6 train-cnn or sweep-lr'),
    Row('CLASSIFIER_REFUSED', 'weights not a mapping', 'classifier', 'weights that are not a mapping', 'refused', 'F is not a classifier saved by mle6 train-cnn or sweep-lr'),
    Row('CLASSIFIER_REFUSED', 'a class count that is not a number', 'classifier', 'a class count that is not a number', 'refused', "F does not fit the exercise's CNN: its class count is 'six'"),
    Row('CLASSIFIER_REFUSED', 'weights of another shape', 'classifier', 'weights of another shape', 'refused', "F does not fit the exercise's CNN: …"),
    Row('CLASSIFIER_REFUSED', 'infinite weights', 'classifier', 'infinite weights', 'refused', 'F holds NaN or infinite weights (…); the model diverged or the file is damaged'),
    Row('RESUME_REFUSED', 'config.json not JSON', '`--resume DIR` config.json', 'not JSON', 'refused', '--resume: DIR/config.json is not valid JSON: …'),
    Row('RESUME_REFUSED', 'config.json a list', 'config.json', 'a JSON list', 'refused', "--resume: DIR/config.json holds a JSON list, not a run's config"),
    Row('RESUME_REFUSED', 'config.json without command', 'config.json', 'no `command`', 'refused', "--resume: DIR/config.json lacks the key 'command'"),
    Row('RESUME_REFUSED', 'config.json without options', 'config.json', 'no `options`', 'refused', "--resume: DIR/config.json lacks the run's options"),
    Row('RESUME_REFUSED', 'config.json missing an option', 'config.json', 'an option missing', 'refused', '--resume: DIR/config.json lacks the option(s) lr'),
    Row('RESUME_REFUSED', 'config.json with a malformed data entry', 'config.json', '`data` not an object', 'refused', "--resume: DIR/config.json has a 'data' entry that is a JSON list, not an object"),
    Row('RESUME_REFUSED', 'resume.pt not a torch file', '`--resume DIR` resume.pt', 'not a torch file', 'refused', '--resume: checkpoint DIR/resume.pt cannot be read: not a torch file (…)'),
    Row('RESUME_REFUSED', 'resume.pt truncated', 'resume.pt', 'truncated', 'refused', '--resume: checkpoint DIR/resume.pt cannot be read: truncated (…)'),
    Row('RESUME_REFUSED', 'resume.pt holding code', 'resume.pt', 'holding code (a module)', 'refused', '--resume: checkpoint DIR/resume.pt holds more than tensors and plain values; refused (…)'),
    Row('RESUME_REFUSED', 'resume.pt a tensor', 'resume.pt', 'a tensor', 'refused', '--resume: DIR/resume.pt is not a resume checkpoint of mle6 (it holds Tensor)'),
    Row('RESUME_REFUSED', 'resume.pt without members', 'resume.pt', 'no members', 'refused', '--resume: DIR/resume.pt is not a resume checkpoint of mle6 (it holds no list of members)'),
    Row('RESUME_REFUSED', 'resume.pt of another command', 'resume.pt', 'of another command than config.json', 'refused', "--resume: DIR/resume.pt belongs to a 'sweep-lr' run, config.json to a train-cnn run"),
]
# fmt: on
