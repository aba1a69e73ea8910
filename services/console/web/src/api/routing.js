// routing (分类、交办): everything the console asks of it, under /api/routing.
import { get, post, put } from './http'

const base = '/api/routing'
export const triage = () => get(`${base}/triage`)
export const decide = (id, body) => post(`${base}/triage/${id}`, body)
export const departments = () => get(`${base}/departments`)
export const disputes = () => get(`${base}/disputes`)
export const models = () => get(`${base}/models`)
export const activateModel = (version) => post(`${base}/models/${encodeURIComponent(version)}/activate`)
// 专题 hot topics
export const topics = (limit = 100) => get(`${base}/topics`, { limit })
export const topic = (id) => get(`${base}/topics/${encodeURIComponent(id)}`)
export const changeTopic = (id, body) => put(`${base}/topics/${encodeURIComponent(id)}`, body)
export const mergeTopics = (id, others) => post(`${base}/topics/${encodeURIComponent(id)}/merge`, { topics: others })
export const splitTopic = (id, opinions) => post(`${base}/topics/${encodeURIComponent(id)}/split`, { opinions })
