"""Shared core of tokenrelay: settings, event model, Redis store and providers."""
