"""Caffe frontend: network prototxts (V1 and V2 layers, Ristretto's layer types and
`quantization_param`) and caffemodels, read with rsim's own protobuf schema, as rsim's IR.

    model = read_caffe("lenet_train_test.prototxt", weights="lenet_iter_10000.caffemodel")
    model.network.run_float(model.transform.apply(pixels))
    params = {"conv1": RistrettoParams(bw_params=8, fl_params=7)}
    write_ristretto_prototxt(model, params, "quantized.prototxt")
"""

from rsim.frontends.caffe.model import CaffeModel, load_caffe, read_caffe
from rsim.frontends.caffe.plan import SUPPORTED_TYPES, ScoreLayer
from rsim.frontends.caffe.ristretto import RistrettoParams
from rsim.frontends.caffe.transform import CaffeTransform
from rsim.frontends.caffe.writer import write_ristretto_prototxt

__all__ = [
    "SUPPORTED_TYPES",
    "CaffeModel",
    "CaffeTransform",
    "RistrettoParams",
    "ScoreLayer",
    "load_caffe",
    "read_caffe",
    "write_ristretto_prototxt",
]
