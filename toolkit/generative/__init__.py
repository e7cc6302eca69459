"""Generative models: a VAE, a (conditional) DCGAN and a denoising autoencoder, with measured
quality (an FID for digits, label accuracy, diversity, PSNR and SSIM) and TFLite export."""

from ..data.generative import NOISE_TYPES, add_noise, digits_splits, image_splits, resolve_images
from .denoiser import Denoiser, DenoiserConfig
from .gan import GAN, GANConfig
from .runner import TFLiteImageModel
from .vae import VAE, VAEConfig

__all__ = [
    "GAN",
    "GANConfig",
    "NOISE_TYPES",
    "Denoiser",
    "DenoiserConfig",
    "TFLiteImageModel",
    "VAE",
    "VAEConfig",
    "add_noise",
    "digits_splits",
    "image_splits",
    "resolve_images",
]
