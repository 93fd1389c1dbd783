"""Configuration: the pydantic model (model), loading and validation (loader), hardware profiles
and the optional extras a configuration needs. The bottom layer: it imports nothing else of the
package.
"""
