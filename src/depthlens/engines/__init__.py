"""Batch engines that run ``pipeline.predict_files`` beyond this process: ``ray``
(``RayEngine``, a Ray Data job; the optional extra ``depthlens[ray]``)."""
